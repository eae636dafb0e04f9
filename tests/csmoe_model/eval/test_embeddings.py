"""The embeddings Parquet: round trip, missing embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embeddings import read_embeddings, write_embeddings
from csmoe_model.eval.retrieval import evaluate_retrieval


def test_embeddings_roundtrip(emb_file: Path, generated: dict) -> None:
    schema = pq.read_schema(emb_file)
    assert schema.field("emb_s1").type == pa.list_(pa.float32(), 16)
    assert schema.field("labels19").type == pa.list_(pa.string())
    emb = read_embeddings(emb_file)
    assert list(emb.patch_id) == generated["patch_id"]
    assert list(emb.split) == generated["split"]
    np.testing.assert_array_equal(emb.emb["s2"], generated["emb"]["s2"])
    assert emb.labels["labels19"] == generated["labels"]["labels19"]
    assert emb.metadata["model"] == "generated" and emb.metadata["sensors"] == {"s1": 16, "s2": 16}
    assert emb.label_column(None) == "labels19"
    with pytest.raises(CsmoeError, match="exists"):
        write_embeddings(emb_file, ["a"], [None], {"s1": np.zeros((1, 2))})


def test_missing_embeddings_are_null_and_skipped(tmp_path: Path) -> None:
    s1 = np.ones((3, 2), dtype=np.float32)
    s1[1] = np.nan
    path = write_embeddings(
        tmp_path / "e.parquet",
        ["a", "b", "c"],
        [None] * 3,
        {"s1": s1},
        labels={"labels": [["x"]] * 3},
    )
    assert pq.read_table(path).column("emb_s1").null_count == 1
    emb = read_embeddings(path)
    assert emb.has_embedding("s1").tolist() == [True, False, True]
    assert not emb.has_embedding("s2").any()
    rep = evaluate_retrieval(emb, k=1)
    assert list(rep.metrics) == ["s1->s1"]
    assert rep.meta["skipped"] == ["s2->s2", "s1->s2", "s2->s1"]
    assert rep.counts["s1->s1"] == {"queries": 2, "archive": 2, "queries_without_labels": 0}
