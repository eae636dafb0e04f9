"""Metric functions against hand-computed cases and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from csmoe_model.eval.metrics import (
    average_precision,
    cosine_search,
    multi_hot,
    multilabel_metrics,
    retrieval_curves,
    retrieval_metrics,
)

# ------------------------------------------------------------------------------------------ labels


def test_multi_hot_sorted_classes_and_empty_rows() -> None:
    m, classes = multi_hot([["b", "a"], None, [], ["c"]])
    assert classes == ["a", "b", "c"]
    assert m.tolist() == [
        [True, True, False],
        [False, False, False],
        [False, False, False],
        [False, False, True],
    ]
    with pytest.raises(ValueError, match="not one of"):
        multi_hot([["z"]], classes=["a"])


# --------------------------------------------------------------------------- retrieval, by hand


def _labels(rows: list[str], classes: str = "ABCD") -> np.ndarray:
    return multi_hot([list(r) for r in rows], classes=list(classes))[0]


def test_retrieval_metrics_hand_computed() -> None:
    # query {A,B}; ranked archive items {A}, {C}, {B,C}
    q = _labels(["AB"])
    a = _labels(["A", "C", "BC"])
    idx = np.array([[0, 1, 2]])
    m3 = retrieval_metrics(q, a, idx, k=3)
    # precision: (1/1 + 0/1 + 1/2) / 3; recall: (1/2 + 0 + 1/2) / 3
    assert m3["precision@3"] == pytest.approx(0.5)
    assert m3["recall@3"] == pytest.approx(1 / 3)
    assert m3["f1@3"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    # relevant at ranks 1 and 3: (P@1 * 1 + P@3 * 1) / 2 = (1 + 2/3) / 2
    assert m3["map@3"] == pytest.approx(5 / 6)
    m1 = retrieval_metrics(q, a, idx, k=1)
    assert m1 == pytest.approx({"map@1": 1.0, "precision@1": 1.0, "recall@1": 0.5, "f1@1": 2 / 3})
    m2 = retrieval_metrics(q, a, idx, k=2)
    assert m2["map@2"] == pytest.approx(1.0)  # one relevant item in the top 2, at rank 1
    assert m2["precision@2"] == pytest.approx(0.5)
    assert m2["recall@2"] == pytest.approx(0.25)


def test_relevant_item_late_in_the_list() -> None:
    q = _labels(["A"])
    a = _labels(["B", "C", "A", "A"])
    idx = np.array([[0, 1, 2, 3]])
    # relevant at ranks 3 and 4: (1/3 + 2/4) / 2
    assert retrieval_metrics(q, a, idx)["map@4"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert retrieval_metrics(q, a, idx, k=2)["map@2"] == 0.0


def test_query_without_relevant_items_scores_zero_and_is_averaged() -> None:
    q = _labels(["A", "D"])
    a = _labels(["A", "AB"])
    idx = np.array([[0, 1], [0, 1]])
    m = retrieval_metrics(q, a, idx, k=2)
    # query 1 (D) shares nothing: all zero; query 0: AP 1, precision (1 + 1/2)/2, recall 1
    assert m["map@2"] == pytest.approx(0.5)
    assert m["precision@2"] == pytest.approx((0.75 + 0) / 2)
    assert m["recall@2"] == pytest.approx(0.5)
    # F1 is the harmonic mean of the query-averaged precision and recall (CSMAE), not a mean of F1s
    p, r = 0.375, 0.5
    assert m["f1@2"] == pytest.approx(2 * p * r / (p + r))


def test_queries_without_labels_are_left_out() -> None:
    q = _labels(["A", ""])
    a = _labels(["A", "B"])
    curves = retrieval_curves(q, a, np.array([[0, 1], [1, 0]]))
    assert curves["n_queries"] == 1 and curves["n_queries_without_labels"] == 1
    assert curves["map"][0] == 1.0


def test_archive_items_without_labels_add_zero_precision() -> None:
    q = _labels(["A"])
    a = _labels(["", "A"])
    m = retrieval_metrics(q, a, np.array([[0, 1]]))
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["map@2"] == pytest.approx(0.5)  # relevant at rank 2: P@2 = 1/2


def test_k_larger_than_archive_averages_over_retrieved_items() -> None:
    q = _labels(["A"])
    a = _labels(["A", "B"])
    res = cosine_search(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]), k=5)
    assert res.indices.tolist() == [[0, 1, -1, -1, -1]]
    assert np.isnan(res.scores[0, 2:]).all()
    assert res.n_retrieved.tolist() == [2]
    m = retrieval_metrics(q, a, res.indices, k=5)
    assert m["precision@5"] == pytest.approx(0.5)  # (1 + 0) / 2 retrieved, not / 5
    assert m["recall@5"] == pytest.approx(0.5)
    assert m["map@5"] == pytest.approx(1.0)


def test_curves_match_metrics_at_each_k() -> None:
    rng = np.random.default_rng(0)
    q = rng.random((30, 5)) < 0.3
    a = rng.random((40, 5)) < 0.3
    idx = np.stack([rng.permutation(40)[:12] for _ in range(30)])
    curves = retrieval_curves(q, a, idx)
    chunked = retrieval_curves(q, a, idx, chunk_size=4)
    for name in ("map", "precision", "recall", "f1"):
        np.testing.assert_allclose(chunked[name], curves[name])
    for k in (1, 5, 12):
        m = retrieval_metrics(q, a, idx, k=k)
        assert m[f"map@{k}"] == pytest.approx(curves["map"][k - 1])
        assert m[f"precision@{k}"] == pytest.approx(curves["precision"][k - 1])


def _brute_force(q: np.ndarray, a: np.ndarray, idx: np.ndarray, k: int) -> dict[str, float]:
    """Loop-by-loop transcription of the definitions, as an independent check."""
    aps, ps, rs = [], [], []
    for qi in range(len(q)):
        if not q[qi].any():
            continue
        items = [j for j in idx[qi, :k] if j >= 0]
        inter = [int((q[qi] & a[j]).sum()) for j in items]
        rel = [x > 0 for x in inter]
        hits, s = 0, 0.0
        for i, r in enumerate(rel, start=1):
            if r:
                hits += 1
                s += hits / i
        aps.append(s / hits if hits else 0.0)
        n = len(items)
        ps.append(
            sum(x / a[j].sum() if a[j].sum() else 0.0 for x, j in zip(inter, items, strict=True))
            / n
            if n
            else 0.0
        )
        rs.append(sum(x / q[qi].sum() for x in inter) / n if n else 0.0)
    p, r = float(np.mean(ps)), float(np.mean(rs))
    return {
        f"map@{k}": float(np.mean(aps)),
        f"precision@{k}": p,
        f"recall@{k}": r,
        f"f1@{k}": 2 * p * r / (p + r) if p + r else 0.0,
    }


def test_matches_brute_force_on_random_lists_with_padding() -> None:
    rng = np.random.default_rng(1)
    q = rng.random((25, 6)) < 0.25
    a = rng.random((30, 6)) < 0.25
    idx = np.stack([rng.permutation(30)[:8] for _ in range(25)])
    idx[3, 5:] = -1  # fewer items retrieved for some queries
    idx[7, :] = -1
    for k in (1, 3, 8):
        assert retrieval_metrics(q, a, idx, k=k) == pytest.approx(_brute_force(q, a, idx, k))


def test_map_over_full_ranking_equals_sklearn_average_precision() -> None:
    # when every archive item is retrieved, AP@N is the classic AP of the ranking
    rng = np.random.default_rng(2)
    q = rng.random((10, 4)) < 0.4
    q[:, 0] = True
    a = rng.random((20, 4)) < 0.3
    idx = np.stack([rng.permutation(20) for _ in range(10)])
    ours = retrieval_metrics(q, a, idx)["map@20"]
    ref = []
    for qi in range(10):
        rel = (a[idx[qi]] & q[qi]).any(axis=1)
        ref.append(average_precision_score(rel, -np.arange(20)) if rel.any() else 0.0)
    assert ours == pytest.approx(np.mean(ref))


def test_bad_inputs_raise() -> None:
    q = _labels(["A"])
    a = _labels(["A"])
    with pytest.raises(ValueError, match="k must be"):
        retrieval_metrics(q, a, np.array([[0]]), k=2)
    with pytest.raises(ValueError, match="out of range"):
        retrieval_metrics(q, a, np.array([[3]]))
    with pytest.raises(ValueError, match="same classes"):
        retrieval_metrics(q, _labels(["A"], classes="AB"), np.array([[0]]))


# ------------------------------------------------------------------------------------------ search


def test_search_matches_brute_force_ranking() -> None:
    rng = np.random.default_rng(3)
    q = rng.normal(size=(37, 16))
    a = rng.normal(size=(53, 16))
    res = cosine_search(q, a, k=7, chunk_size=8)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    sim = qn @ an.T
    expected = np.argsort(-sim, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(res.indices, expected)
    np.testing.assert_allclose(res.scores, np.take_along_axis(sim, expected, 1), atol=1e-5)


def test_ties_are_broken_by_archive_order() -> None:
    # exact ties: parallel vectors of different length give identical cosine 1.0
    archive = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [5.0, 0.0]])
    res = cosine_search(np.array([[1.0, 0.0], [0.0, 1.0]]), archive, k=4)
    assert res.indices.tolist() == [[1, 2, 4, 0], [0, 3, 1, 2]]
    # many ties across the k-th position: the earliest rows win, in archive order
    many = np.tile([[1.0, 0.0]], (50, 1))
    many[10] = [0.0, 1.0]
    res = cosine_search(np.array([[1.0, 0.0]]), many, k=12)
    assert res.indices.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]]


def test_ties_mixed_rows_match_a_stable_sort() -> None:
    # one-hot directions with integer lengths: cosine is exactly 0 or 1, so most rows tie at the cut
    rng = np.random.default_rng(7)
    archive = np.eye(4)[rng.integers(0, 4, 60)] * rng.integers(1, 5, (60, 1))
    queries = np.vstack([np.eye(4)[rng.integers(0, 4, 25)], rng.normal(size=(5, 4))])
    res = cosine_search(queries, archive, k=20, chunk_size=7)
    an = archive / np.linalg.norm(archive, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sim = np.round(qn @ an.T, 6)  # the random rows have no exact ties; rounding only merges 1.0s
    expected = np.argsort(-sim, axis=1, kind="stable")[:, :20]
    np.testing.assert_array_equal(res.indices, expected)


def test_self_exclusion_when_sets_overlap() -> None:
    rng = np.random.default_rng(4)
    emb = rng.normal(size=(20, 8))
    ids = [f"p{i}" for i in range(20)]
    res = cosine_search(emb, emb, k=5, query_ids=ids, archive_ids=ids)
    assert not (res.indices == np.arange(20)[:, None]).any()
    assert (res.n_retrieved == 5).all()
    # without ids every query finds itself first
    res = cosine_search(emb, emb, k=1)
    assert res.indices[:, 0].tolist() == list(range(20))
    # partial overlap: queries are rows 10..24 of a bigger set, archive rows 0..19
    more = np.vstack([emb, rng.normal(size=(5, 8))])
    qids = [f"p{i}" for i in range(10, 25)]
    res = cosine_search(more[10:25], emb, k=20, query_ids=qids, archive_ids=ids)
    for row, qid in enumerate(qids):
        n = int(qid[1:])
        got = res.indices[row]
        if n < 20:
            assert n not in got and got[-1] == -1  # itself excluded, 19 left
        else:
            assert (got >= 0).all()


def test_exclusion_is_by_id_not_by_vector() -> None:
    # a duplicate image with another id is still retrieved
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ids = ["a", "b", "c"]
    res = cosine_search(emb, emb, k=2, query_ids=ids, archive_ids=ids)
    assert res.indices[:, 0].tolist() == [1, 0, 0]


def test_search_input_checks() -> None:
    a = np.ones((3, 2))
    with pytest.raises(ValueError, match="k must"):
        cosine_search(a, a, k=0)
    with pytest.raises(ValueError, match="both"):
        cosine_search(a, a, k=1, query_ids=["a", "b", "c"])
    with pytest.raises(ValueError, match="not unique"):
        cosine_search(a, a, k=1, query_ids=["a", "b", "c"], archive_ids=["a", "a", "c"])
    with pytest.raises(ValueError, match="NaN"):
        cosine_search(np.array([[np.nan, 1.0]]), a, k=1)
    with pytest.raises(ValueError, match="dimension"):
        cosine_search(np.ones((1, 3)), a, k=1)


# ---------------------------------------------------------------------------- multi-label metrics


def test_average_precision_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        y = rng.random(40) < 0.3
        if not y.any():
            continue
        s = np.round(rng.random(40), 1)  # many ties
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    assert np.isnan(average_precision(np.zeros(3, bool), np.ones(3)))


def test_average_precision_hand_computed() -> None:
    # ranking: pos, neg, pos -> (1/1 + 2/3) / 2
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx(5 / 6)
    # a tie between a positive and a negative at the top counts as one threshold: P = 1/2
    assert average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)


def test_multilabel_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(6)
    y = rng.random((60, 5)) < 0.3
    y[:, 4] = False  # a class without positives: excluded from macro, reported
    s = np.clip(y * 0.4 + rng.random((60, 5)) * 0.7, 0, 1)
    m = multilabel_metrics(y, s, classes=list("abcde"))
    assert m["classes_without_positives"] == ["e"]
    assert m["n_classes_evaluated"] == 4
    assert m["macro_map"] == pytest.approx(
        average_precision_score(y[:, :4], s[:, :4], average="macro")
    )
    assert m["micro_map"] == pytest.approx(average_precision_score(y, s, average="micro"))
    pred = s >= 0.5
    assert m["macro_f1"] == pytest.approx(f1_score(y[:, :4], pred[:, :4], average="macro"))
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert set(m["per_class_ap"]) == set("abcd")


def test_multilabel_metrics_perfect_and_shape_errors() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    m = multilabel_metrics(y, y.astype(float))
    assert m["macro_map"] == m["micro_map"] == m["macro_f1"] == m["micro_f1"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        multilabel_metrics(y, np.zeros((3, 3)))
