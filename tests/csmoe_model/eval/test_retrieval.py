"""Embeddings Parquet, retrieval and probes end to end on generated embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embeddings import read_embeddings
from csmoe_model.eval.metrics import cosine_search, multi_hot, retrieval_metrics
from csmoe_model.eval.retrieval import DIRECTIONS, evaluate_retrieval


def test_cross_sensor_retrieval_is_near_perfect(emb_file: Path) -> None:
    emb = read_embeddings(emb_file)
    rep = evaluate_retrieval(emb, k=10, device="cpu", chunk_size=50)
    assert list(rep.metrics) == list(DIRECTIONS)
    for direction in DIRECTIONS:
        assert rep.metrics[direction]["map@10"] > 0.95, direction
        assert rep.counts[direction]["queries"] == 180
    # clusters 0 and 1 share "forest": precision (|L(q) & L(r)| / |L(r)|) is 1 within a cluster,
    # and the top 10 all come from the query's own cluster
    assert rep.metrics["s1->s2"]["precision@10"] > 0.95
    d = rep.to_dict()
    assert set(d) == {*DIRECTIONS, "meta"}
    assert set(d["s1->s2"]) == {"map@10", "precision@10", "recall@10", "f1@10"}


def test_noise_lowers_cross_sensor_retrieval(embeddings_factory) -> None:
    # independent noise as large as the signal: cross-sensor retrieval gets measurably worse
    g = embeddings_factory(noise=6.0, seed=1)
    from csmoe_model.eval.embeddings import EmbeddingSet

    emb = EmbeddingSet(
        patch_id=np.array(g["patch_id"], dtype=object),
        split=np.array(g["split"], dtype=object),
        labels=g["labels"],
        emb=g["emb"],
    )
    rep = evaluate_retrieval(emb, k=10, device="cpu")
    assert rep.metrics["s1->s2"]["map@10"] < rep.metrics["s2->s2"]["map@10"]
    assert rep.metrics["s1->s2"]["precision@10"] < 0.9


def test_split_selection_and_self_exclusion(emb_file: Path, generated: dict) -> None:
    emb = read_embeddings(emb_file)
    rep = evaluate_retrieval(emb, k=5, queries="val", archive="test")
    assert rep.counts["s2->s1"] == {"queries": 36, "archive": 72, "queries_without_labels": 0}
    assert rep.meta["queries"] == "val" and rep.meta["archive"] == "test"
    # the same computed by hand with the metric functions
    split = np.array(generated["split"])
    q, a = split == "val", split == "test"
    labels, _ = multi_hot(generated["labels"]["labels19"])
    res = cosine_search(generated["emb"]["s2"][q], generated["emb"]["s1"][a], k=5)
    expected = retrieval_metrics(labels[q], labels[a], res.indices)
    assert rep.metrics["s2->s1"] == pytest.approx(expected)


def test_default_all_rows_excludes_the_query_and_its_twin() -> None:
    # two rows only, different labels: each query's only candidate is the other row
    emb_s = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    from csmoe_model.eval.embeddings import EmbeddingSet

    emb = EmbeddingSet(
        patch_id=np.array(["a", "b"], dtype=object),
        split=np.array([None, None], dtype=object),
        labels={"labels": [["x"], ["y"]]},
        emb={"s1": emb_s, "s2": emb_s.copy()},
    )
    rep = evaluate_retrieval(emb, k=1)
    # without exclusion S1->S2 would retrieve each patch's own S2 twin (relevant, map 1)
    assert rep.metrics["s1->s2"]["map@1"] == 0.0
    assert rep.metrics["s1->s1"]["precision@1"] == 0.0


def test_retrieval_errors(emb_file: Path) -> None:
    emb = read_embeddings(emb_file)
    with pytest.raises(CsmoeError, match="no rows with split 'validation'"):
        evaluate_retrieval(emb, queries="validation")
    with pytest.raises(CsmoeError, match="label column 'lbl'"):
        evaluate_retrieval(emb, labels_column="lbl")
    with pytest.raises(CsmoeError, match="at least 1"):
        evaluate_retrieval(emb, k=0)
    with pytest.raises(CsmoeError, match="direction"):
        evaluate_retrieval(emb, directions=["s1->s3"])
