"""Embeddings Parquet, retrieval and probes end to end on generated embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embeddings import read_embeddings, write_embeddings
from csmoe_model.eval.metrics import cosine_search, multi_hot, retrieval_metrics
from csmoe_model.eval.probe import evaluate_probe, knn_scores
from csmoe_model.eval.report import (
    plot_precision_curves,
    probe_markdown,
    retrieval_markdown,
)
from csmoe_model.eval.retrieval import DIRECTIONS, evaluate_retrieval

from .conftest import make_embeddings


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


def test_noise_lowers_cross_sensor_retrieval() -> None:
    # independent noise as large as the signal: cross-sensor retrieval gets measurably worse
    g = make_embeddings(noise=6.0, seed=1)
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


def test_reports_markdown_and_plots(emb_file: Path, tmp_path: Path) -> None:
    emb = read_embeddings(emb_file)
    rep = evaluate_retrieval(emb, k=10, curve_k=25)
    assert all(len(c["precision"]) == 25 for c in rep.curves.values())
    md = retrieval_markdown(rep)
    assert md.count("\n| S") == 4 and "mAP@10" in md
    files = plot_precision_curves(rep, tmp_path / "plots")
    assert [f.name for f in files] == ["precision_at_k.png", "map_at_k.png"]
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CsmoeError, match="exists"):
        plot_precision_curves(rep, tmp_path / "plots")
