"""Retrieval and multi-label classification metrics, the way the remote-sensing field computes them.

Pure numpy/torch: no data-half imports, no scikit-learn (tests check against scikit-learn).

Retrieval (content-based image retrieval, CBIR), for queries ``q`` and an archive of items ``r``:

- similarity: cosine between L2-normalised embeddings; exact search (:func:`cosine_search`) in
  query chunks with torch on any device. When query and archive sets overlap, an archive item with
  the query's own ``patch_id`` is never retrieved for it.
- relevance: ``rel(q, r) = 1`` when ``q`` and ``r`` share at least one label.
- ``map@k`` (as in BigEarthNet retrieval work): AP@k = sum over ranks i <= k of precision@i x rel(i),
  divided by the number of relevant items among the top k; 0 when there is none. Mean over queries.
- ``precision@k`` and ``recall@k`` (as in CSMAE: Hackstein, Sumbul, Clasen, Demir, IEEE TGRS 2024): for retrieved item r of query q,
  |L(q) & L(r)| / |L(r)| and |L(q) & L(r)| / |L(q)|, averaged over the retrieved items, then over queries;
  ``f1@k`` is the harmonic mean of the two query-averaged values (CSMAE's ``retrieval.py``).

Conventions (documented because papers rarely state them):

- k larger than what can be retrieved (the archive, minus the query itself): every per-query average is
  over the items actually retrieved, ``min(k, available)``; a query with nothing to retrieve scores 0.
- ties in similarity are broken stably by archive order: among equal scores, the item earlier in the
  archive ranks first (so results are deterministic and device-independent up to float rounding).
- queries without any label cannot be judged (relevance is undefined) and are left out of the means;
  their number is reported. Archive items without labels are never relevant and add 0 to precision.

Multi-label classification (linear and kNN probes): average precision per class as scikit-learn
defines it (``sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds); macro mAP over classes with at
least one positive in the evaluated set (the others are reported, not averaged); micro mAP over all
(sample, class) pairs; F1 with predictions ``score >= threshold`` (default 0.5), macro over the same
classes as macro mAP, micro over all classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from csmoe_common.device import resolve_device

__all__ = [
    "SearchResult",
    "average_precision",
    "cosine_search",
    "l2_normalize",
    "multi_hot",
    "multilabel_metrics",
    "retrieval_curves",
    "retrieval_metrics",
]


# --------------------------------------------------------------------------------------------- labels


def multi_hot(
    label_lists: Iterable[Sequence[str] | None], classes: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Encode label lists as a boolean multi-hot matrix.

    Args:
        label_lists: one list of label strings per item (``None`` = no labels).
        classes: the class order; by default the sorted union of all labels.

    Returns:
        ``(matrix, classes)`` with ``matrix`` of shape (N, C), dtype bool.

    Raises:
        ValueError: if a label is not in ``classes``.
    """
    lists = [list(x) if x is not None else [] for x in label_lists]
    if classes is None:
        classes = sorted({str(lab) for labs in lists for lab in labs})
    classes = [str(c) for c in classes]
    position = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(lists), len(classes)), dtype=bool)
    for row, labs in enumerate(lists):
        for lab in labs:
            try:
                out[row, position[str(lab)]] = True
            except KeyError:
                raise ValueError(
                    f"label {lab!r} is not one of the {len(classes)} classes"
                ) from None
    return out, classes


# ------------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class SearchResult:
    """Top-k neighbours of each query.

    Attributes:
        indices: (Q, k) int64 archive row indices, best first; -1 pads rows where fewer than k items
            could be retrieved (k above the archive size, or the query itself excluded).
        scores: (Q, k) float32 cosine similarities; NaN where ``indices`` is -1.
    """

    indices: np.ndarray
    scores: np.ndarray

    @property
    def n_retrieved(self) -> np.ndarray:
        """Number of items retrieved for each query, shape (Q,)."""
        return (self.indices >= 0).sum(axis=1)


#: most similarity scores held at once (elements); large archives get smaller query chunks
_MAX_SCORES = 2**28


def l2_normalize(x: np.ndarray | torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Return rows of ``x`` scaled to unit L2 norm (zero rows stay zero), as a float32 tensor.

    Raises:
        ValueError: if ``x`` is not 2-D or holds NaN or infinite values.
    """
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (items, dims), got shape {tuple(t.shape)}")
    t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError("embeddings hold NaN or infinite values")
    return t / t.norm(dim=1, keepdim=True).clamp_min(eps)


def _stable_topk(sim: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k per row, ties broken by column order (earlier column first).

    ``torch.topk`` makes no promise about which of equal values it keeps. Where more than k columns
    reach the k-th value (a tie across the cut), the k-th value is used as a threshold: every column
    above it is kept, plus the earliest columns equal to it. The kept columns are then ordered by
    value, equal values by column.
    """
    vals, cols = torch.topk(sim, k, dim=1, largest=True, sorted=True)
    kth = vals[:, -1:]
    ambiguous = torch.nonzero((sim >= kth).sum(dim=1) > k).flatten()
    if ambiguous.numel():  # rare with real embeddings; only these rows pay for the exact rule
        sub, sub_kth = sim[ambiguous], kth[ambiguous]
        equal = sub == sub_kth
        need = k - (sub > sub_kth).sum(dim=1, keepdim=True)
        chosen = (sub > sub_kth) | (equal & (torch.cumsum(equal.to(torch.int32), dim=1) <= need))
        # nonzero walks row-major, so each row's columns come in ascending order; exactly k per row
        cols[ambiguous] = torch.nonzero(chosen)[:, 1].view(-1, k)
    cols = torch.sort(cols, dim=1).values
    vals = torch.gather(sim, 1, cols)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return torch.gather(cols, 1, order), torch.gather(vals, 1, order)


def cosine_search(
    queries: np.ndarray | torch.Tensor,
    archive: np.ndarray | torch.Tensor,
    k: int,
    *,
    query_ids: Sequence[str] | np.ndarray | None = None,
    archive_ids: Sequence[str] | np.ndarray | None = None,
    device: str | torch.device = "cpu",
    chunk_size: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> SearchResult:
    """Exact cosine-similarity search of every query in the archive.

    The archive stays on ``device``; queries go through in chunks of ``chunk_size`` rows (fewer when
    the archive is so large that a chunk would exceed 2**28 scores, 1 GiB), so memory is
    ``chunk x len(archive)`` scores at a time. When both id arrays are given, the archive
    item whose id equals the query's id is excluded (the query itself, when query and archive sets
    overlap).

    Args:
        queries: (Q, D) embeddings.
        archive: (N, D) embeddings.
        k: neighbours per query (may exceed N; rows are then padded with -1).
        query_ids: ids of the queries (e.g. ``patch_id``), for self-exclusion.
        archive_ids: ids of the archive items; must be unique when given.
        device: torch device for the search (``"auto"``, ``"cpu"``, ``"cuda"``, ...).
        chunk_size: queries per chunk.
        progress: called with the number of queries finished after each chunk.

    Returns:
        The :class:`SearchResult`; ties are broken by archive order.

    Raises:
        ValueError: on bad shapes, non-finite values, ``k < 1``, only one id array given, or
            duplicate archive ids.
        CsmoeError: for a device that does not exist here.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    dev = resolve_device(str(device))
    q = l2_normalize(queries)
    a = l2_normalize(archive)
    if q.shape[1] != a.shape[1]:
        raise ValueError(
            f"query dimension {q.shape[1]} differs from archive dimension {a.shape[1]}"
        )
    n_q, n_a = q.shape[0], a.shape[0]

    self_pos = None
    if (query_ids is None) != (archive_ids is None):
        raise ValueError("give both query_ids and archive_ids (for self-exclusion), or neither")
    if query_ids is not None and archive_ids is not None:
        if len(query_ids) != n_q or len(archive_ids) != n_a:
            raise ValueError("id arrays must have one entry per embedding row")
        position = {str(x): i for i, x in enumerate(archive_ids)}
        if len(position) != n_a:
            raise ValueError("archive ids are not unique")
        self_pos = np.array([position.get(str(x), -1) for x in query_ids], dtype=np.int64)

    k_eff = min(k, n_a)
    indices = np.full((n_q, k), -1, dtype=np.int64)
    scores = np.full((n_q, k), np.nan, dtype=np.float32)
    if n_q == 0 or n_a == 0:
        return SearchResult(indices, scores)

    # bound the (chunk x archive) score matrix and its temporaries to ~1 GiB of float32
    chunk_size = max(1, min(chunk_size, _MAX_SCORES // max(n_a, 1)))
    a = a.to(dev)
    with torch.no_grad():
        for start in range(0, n_q, chunk_size):
            stop = min(start + chunk_size, n_q)
            sim = q[start:stop].to(dev) @ a.T
            if self_pos is not None:
                rows = np.nonzero(self_pos[start:stop] >= 0)[0]
                if rows.size:
                    r = torch.as_tensor(rows, device=dev)
                    c = torch.as_tensor(self_pos[start:stop][rows], device=dev)
                    sim[r, c] = -math.inf
            cols, vals = _stable_topk(sim, k_eff)
            cols_np = cols.cpu().numpy()
            vals_np = vals.float().cpu().numpy()
            excluded = ~np.isfinite(vals_np)  # only self-excluded items score -inf
            cols_np[excluded] = -1
            vals_np[excluded] = np.nan
            indices[start:stop, :k_eff] = cols_np
            scores[start:stop, :k_eff] = vals_np
            if progress is not None:
                progress(stop - start)
    # an excluded item can only sit at the end of a row (it scores -inf), so -1 padding stays at the end
    return SearchResult(indices, scores)


# ---------------------------------------------------------------------------------- retrieval metrics


def _curve_sums(
    ql: np.ndarray, al: np.ndarray, idx: np.ndarray, n_q_labels: np.ndarray
) -> np.ndarray:
    """Per-cut-off sums over queries of AP@k, precision@k and recall@k, shape (3, K)."""
    n_k = idx.shape[1]
    valid = idx >= 0
    n_ret = valid.sum(axis=1)
    # labels of the retrieved items; padding gets an all-false row so it adds nothing
    retrieved = al[np.where(valid, idx, 0)] & valid[:, :, None]  # (Q, K, C)
    inter = (retrieved & ql[:, None, :]).sum(axis=2).astype(np.float64)  # (Q, K)
    n_r_labels = retrieved.sum(axis=2)
    p_item = np.divide(inter, n_r_labels, out=np.zeros_like(inter), where=n_r_labels > 0)
    r_item = inter / n_q_labels[:, None]
    rel = (inter > 0).astype(np.float64)

    ranks = np.arange(1, n_k + 1, dtype=np.float64)
    # items counted at cut-off k: min(k, retrieved); none -> the query scores 0
    n_at_k = np.minimum(ranks[None, :], n_ret[:, None].astype(np.float64))
    safe_n = np.where(n_at_k > 0, n_at_k, 1.0)
    prec_k = np.where(n_at_k > 0, np.cumsum(p_item, axis=1) / safe_n, 0.0)
    rec_k = np.where(n_at_k > 0, np.cumsum(r_item, axis=1) / safe_n, 0.0)
    cum_rel = np.cumsum(rel, axis=1)
    ap_num = np.cumsum(cum_rel / ranks[None, :] * rel, axis=1)
    ap_k = np.where(cum_rel > 0, ap_num / np.where(cum_rel > 0, cum_rel, 1.0), 0.0)
    return np.stack([ap_k.sum(axis=0), prec_k.sum(axis=0), rec_k.sum(axis=0)])


def retrieval_curves(
    query_labels: np.ndarray,
    archive_labels: np.ndarray,
    indices: np.ndarray,
    chunk_size: int = 4096,
) -> dict[str, np.ndarray | int]:
    """Retrieval metrics at every cut-off k = 1..K for a ranked result list.

    Args:
        query_labels: (Q, C) multi-hot labels of the queries.
        archive_labels: (N, C) multi-hot labels of the archive (same class order).
        indices: (Q, K) archive indices per query, best first, -1 padding at the end of a row.
        chunk_size: queries processed at a time (bounds memory at chunk x K x C booleans).

    Returns:
        ``{"map", "precision", "recall", "f1"}``: arrays of shape (K,), entry ``k-1`` holding the
        query-averaged metric at k; plus ``n_queries`` (queries averaged) and
        ``n_queries_without_labels`` (left out).

    Raises:
        ValueError: on inconsistent shapes or indices out of range.
    """
    ql = np.asarray(query_labels, dtype=bool)
    al = np.asarray(archive_labels, dtype=bool)
    idx = np.asarray(indices, dtype=np.int64)
    if ql.ndim != 2 or al.ndim != 2 or ql.shape[1] != al.shape[1]:
        raise ValueError("query and archive labels must be (items, classes) with the same classes")
    if idx.ndim != 2 or idx.shape[0] != ql.shape[0]:
        raise ValueError("indices must be (queries, K) with one row per query")
    if idx.size and (idx.max() >= al.shape[0] or idx.min() < -1):
        raise ValueError("indices out of range of the archive")
    n_k = idx.shape[1]

    n_q_labels = ql.sum(axis=1)
    keep = n_q_labels > 0
    n_without = int((~keep).sum())
    ql, idx, n_q_labels = ql[keep], idx[keep], n_q_labels[keep]
    n_queries = ql.shape[0]
    if n_queries == 0 or n_k == 0:
        zeros = np.zeros(n_k, dtype=np.float64)
        return {
            "map": zeros,
            "precision": zeros.copy(),
            "recall": zeros.copy(),
            "f1": zeros.copy(),
            "n_queries": n_queries,
            "n_queries_without_labels": n_without,
        }

    sums = np.zeros((3, n_k), dtype=np.float64)  # AP, precision, recall summed over queries
    # chunks bound the (queries, K, classes) temporaries
    for start in range(0, n_queries, chunk_size):
        sl = slice(start, start + chunk_size)
        sums += _curve_sums(ql[sl], al, idx[sl], n_q_labels[sl])
    ap_mean, mean_p, mean_r = sums / n_queries
    denom = mean_p + mean_r
    f1 = np.divide(2 * mean_p * mean_r, denom, out=np.zeros_like(denom), where=denom > 0)
    return {
        "map": ap_mean,
        "precision": mean_p,
        "recall": mean_r,
        "f1": f1,
        "n_queries": n_queries,
        "n_queries_without_labels": n_without,
    }


def retrieval_metrics(
    query_labels: np.ndarray,
    archive_labels: np.ndarray,
    indices: np.ndarray,
    k: int | None = None,
) -> dict[str, float]:
    """``map@k``, ``precision@k``, ``recall@k`` and ``f1@k`` for a ranked result list.

    Args:
        query_labels: (Q, C) multi-hot labels of the queries.
        archive_labels: (N, C) multi-hot labels of the archive.
        indices: (Q, K) archive indices per query, best first, -1 padded.
        k: the cut-off (default: K, all columns of ``indices``); at most K.

    Returns:
        ``{"map@k": ..., "precision@k": ..., "recall@k": ..., "f1@k": ...}`` as Python floats.

    Raises:
        ValueError: on inconsistent shapes, or ``k`` outside 1..K.
    """
    idx = np.asarray(indices)
    k = idx.shape[1] if k is None else k
    if not 1 <= k <= idx.shape[1]:
        raise ValueError(f"k must be between 1 and {idx.shape[1]}, got {k}")
    curves = retrieval_curves(query_labels, archive_labels, idx[:, :k])
    return {
        f"{name}@{k}": float(np.asarray(curves[name])[k - 1])
        for name in ("map", "precision", "recall", "f1")
    }


# ----------------------------------------------------------------------------- multi-label metrics


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one binary problem, as scikit-learn's ``average_precision_score``.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first.

    Returns:
        The AP, or NaN when ``y_true`` has no positive.

    Raises:
        ValueError: if the arrays differ in length.
    """
    y = np.asarray(y_true, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError("y_true and scores must have the same length")
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # last position of each run of equal scores = one threshold
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(np.shape(tp), dtype=np.float64), where=denom > 0)


def multilabel_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float = 0.5,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Macro and micro mAP and F1 of multi-label scores.

    Args:
        y_true: (N, C) multi-hot ground truth.
        scores: (N, C) scores (probabilities for F1 to make sense).
        threshold: predictions are ``scores >= threshold``.
        classes: class names for the report (default: ``"0"``, ``"1"``, ...).

    Returns:
        ``macro_map``, ``micro_map``, ``macro_f1``, ``micro_f1`` (floats), ``per_class_ap`` (name ->
        AP, evaluated classes only), ``n_classes_evaluated`` and ``classes_without_positives``.

    Raises:
        ValueError: on shape mismatch.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"y_true {y.shape} and scores {s.shape} must be the same (N, C) shape")
    names = (
        [str(c) for c in classes] if classes is not None else [str(i) for i in range(y.shape[1])]
    )
    if len(names) != y.shape[1]:
        raise ValueError("one class name per column is needed")
    has_pos = y.any(axis=0)
    per_class = {names[c]: average_precision(y[:, c], s[:, c]) for c in np.nonzero(has_pos)[0]}
    pred = s >= threshold
    tp = (pred & y).sum(axis=0).astype(np.float64)
    fp = (pred & ~y).sum(axis=0).astype(np.float64)
    fn = (~pred & y).sum(axis=0).astype(np.float64)
    f1_per = _f1(tp, fp, fn)
    nan = float("nan")
    return {
        "macro_map": float(np.mean(list(per_class.values()))) if per_class else nan,
        "micro_map": average_precision(y, s) if y.any() else nan,
        "macro_f1": float(f1_per[has_pos].mean()) if has_pos.any() else nan,
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "per_class_ap": per_class,
        "n_classes_evaluated": int(has_pos.sum()),
        "classes_without_positives": [names[c] for c in np.nonzero(~has_pos)[0]],
    }
