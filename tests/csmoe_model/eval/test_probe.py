"""Linear and kNN probes on frozen embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embeddings import read_embeddings, write_embeddings
from csmoe_model.eval.probe import evaluate_probe, knn_scores
from csmoe_model.eval.report import (
    probe_markdown,
)


def test_probe_end_to_end(emb_file: Path) -> None:
    emb = read_embeddings(emb_file)
    rep = evaluate_probe(emb, sensor="both", cs=(0.01, 1.0), device="cpu")
    assert rep.meta["rows"] == {"train": 72, "val": 36, "test": 72}
    assert rep.linear["C"] in (0.01, 1.0) and rep.linear["C_selection"] == "val macro mAP"
    assert set(rep.linear["val_macro_map"]) == {"0.01", "1.0"}
    for section in (rep.linear, rep.knn):
        assert section["macro_map"] > 0.95 and section["micro_map"] > 0.95
        assert section["micro_f1"] > 0.9
    assert rep.knn["k"] == 20
    md = probe_markdown(rep)
    assert "| kNN (k = 20) |" in md and "macro mAP" in md


def test_probe_single_sensor_and_errors(emb_file: Path, generated: dict, tmp_path: Path) -> None:
    emb = read_embeddings(emb_file)
    rep = evaluate_probe(emb, sensor="s1", cs=(1.0,), labels_column="labels")
    assert rep.meta["labels_column"] == "labels" and rep.linear["macro_map"] > 0.95
    with pytest.raises(CsmoeError, match="--sensor"):
        evaluate_probe(emb, sensor="s3")
    no_test = write_embeddings(
        tmp_path / "nt.parquet",
        generated["patch_id"],
        ["train"] * len(generated["patch_id"]),
        generated["emb"],
        labels=generated["labels"],
    )
    with pytest.raises(CsmoeError, match="split 'test'"):
        evaluate_probe(read_embeddings(no_test))


def test_probe_without_val_uses_fixed_c(emb_file: Path, generated: dict, tmp_path: Path) -> None:
    split = ["test" if s == "test" else "train" for s in generated["split"]]
    path = write_embeddings(
        tmp_path / "nv.parquet",
        generated["patch_id"],
        split,
        generated["emb"],
        labels=generated["labels"],
    )
    rep = evaluate_probe(read_embeddings(path))
    assert rep.linear["C"] == 1.0 and rep.linear["C_selection"] == "fixed (no val rows)"


def test_knn_scores_are_similarity_weighted_votes() -> None:
    train = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    y = np.array([[1, 0], [1, 1], [0, 1]], dtype=bool)
    s = knn_scores(train, y, np.array([[1.0, 0.0]]), k=3)
    w = np.array([1.0, 1.0 / np.sqrt(1.01), 0.0])  # cosine; the orthogonal one votes 0
    expected = (w[:, None] * y).sum(0) / w.sum()
    np.testing.assert_allclose(s[0], expected, rtol=1e-5)
    # all neighbours dissimilar: equal votes
    s = knn_scores(np.array([[-1.0, 0.0], [0.0, -1.0]]), y[:2], np.array([[1.0, 1.0]]), k=2)
    np.testing.assert_allclose(s[0], [1.0, 0.5])


def test_unknown_sensor_is_a_clear_error(emb_file: Path) -> None:
    from csmoe_model.eval.probe import features

    emb = read_embeddings(emb_file)
    with pytest.raises(CsmoeError, match="--sensor must be s1, s2 or both"):
        features(emb, "s3")
    with pytest.raises(CsmoeError, match="--sensor must be"):
        evaluate_probe(emb, sensor="s3", device="cpu")
