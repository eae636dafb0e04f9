"""Content-based image retrieval within and across sensors (S1->S1, S2->S2, S1->S2, S2->S1).

For direction ``a->b`` the queries are the ``a`` embeddings of the query rows and the archive the
``b`` embeddings of the archive rows; exact cosine search (:func:`~csmoe_model.eval.metrics.cosine_search`)
with the query's own ``patch_id`` excluded from its archive (so with the default "all rows as both
queries and archive", nobody retrieves itself, and in S1->S2 nobody retrieves its own S2 twin, which
would make cross-sensor retrieval trivially easy). Metrics: :mod:`csmoe_model.eval.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csmoe_common.device import resolve_device
from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embeddings import EmbeddingSet
from csmoe_model.eval.metrics import cosine_search, retrieval_curves
from csmoe_model.eval.options import RETRIEVAL_CHUNK_SIZE, RETRIEVAL_K

__all__ = ["DIRECTIONS", "RetrievalReport", "evaluate_retrieval", "parse_direction"]

#: the four directions CSMAE and CSMoE report, in their order
DIRECTIONS: tuple[str, ...] = ("s1->s1", "s2->s2", "s1->s2", "s2->s1")
METRICS: tuple[str, ...] = ("map", "precision", "recall", "f1")


def parse_direction(direction: str) -> tuple[str, str]:
    """Split ``"s1->s2"`` into ``("s1", "s2")``.

    Raises:
        CsmoeError: for anything else.
    """
    parts = direction.replace(" ", "").lower().split("->")
    if len(parts) != 2 or not all(p in ("s1", "s2") for p in parts):
        raise CsmoeError(f"bad retrieval direction {direction!r}; use e.g. s1->s2")
    return parts[0], parts[1]


@dataclass
class RetrievalReport:
    """Result of :func:`evaluate_retrieval`.

    Attributes:
        k: the cut-off of :attr:`metrics`.
        metrics: direction -> ``{"map@k", "precision@k", "recall@k", "f1@k"}``.
        curves: direction -> metric name -> array over k = 1..K (k <= K <= ``curve_k``; cut where
            no query retrieves more items, i.e. at the archive size).
        counts: direction -> ``{"queries", "archive", "queries_without_labels"}``.
        meta: labels column, splits, device, skipped directions.
    """

    k: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: ``{"s1->s2": {"map@10": ...}, ..., "meta": {...}}``."""
        out: dict[str, Any] = {d: dict(m) for d, m in self.metrics.items()}
        out["meta"] = {**self.meta, "k": self.k, "counts": self.counts}
        return out


#: most entries of the (queries x k) ranked lists a search may allocate (2**28: 2 GiB of int64)
_MAX_RANKED = 2**28


def evaluate_retrieval(
    embeddings: EmbeddingSet,
    *,
    labels_column: str | None = None,
    k: int = RETRIEVAL_K,
    queries: str | None = None,
    archive: str | None = None,
    directions: Sequence[str] = DIRECTIONS,
    curve_k: int | None = None,
    device: str = "auto",
    chunk_size: int = RETRIEVAL_CHUNK_SIZE,
    progress: Callable[[str, int, int], None] | None = None,
) -> RetrievalReport:
    """Retrieval metrics at ``k`` for each direction.

    Args:
        embeddings: the embeddings (with labels).
        labels_column: label column for relevance (default ``labels19``, else ``labels``).
        k: cut-off.
        queries: split whose rows are the queries (``None``: all rows).
        archive: split whose rows form the archive (``None``: all rows).
        directions: subset of :data:`DIRECTIONS`; a direction whose sensor has no embeddings is
            skipped and listed in ``meta["skipped"]``.
        curve_k: also compute the curves up to this cut-off (for plots); at least ``k``.
        device: torch device for the search.
        chunk_size: queries per search chunk.
        progress: called as ``progress(direction, done, total)`` while searching.

    Returns:
        The :class:`RetrievalReport`.

    Raises:
        CsmoeError: on a missing label column or split, ``k < 1``, no direction computable, or bad
            directions.
    """
    if k < 1:
        raise CsmoeError(f"--k must be at least 1, got {k}")
    if curve_k is not None and curve_k < 1:
        raise CsmoeError(f"--plot-k must be at least 1, got {curve_k}")
    column = embeddings.label_column(labels_column)
    labels, classes = embeddings.label_matrix(column)
    q_rows = embeddings.split_mask(queries)
    a_rows = embeddings.split_mask(archive)
    dev = resolve_device(device)

    report = RetrievalReport(k=k)
    skipped: list[str] = []
    warnings: list[str] = []
    without: dict[str, dict[str, int]] = {}
    for direction in directions:
        src, dst = parse_direction(direction)
        name = f"{src}->{dst}"
        qm = q_rows & embeddings.has_embedding(src)
        am = a_rows & embeddings.has_embedding(dst)
        # rows without a finite embedding cannot take part: say how many, never drop them silently
        q_missing, a_missing = int((q_rows & ~qm).sum()), int((a_rows & ~am).sum())
        if q_missing or a_missing:
            warnings.append(
                f"{name}: {q_missing} query and {a_missing} archive row(s) have no finite "
                "embedding (NaN) and were left out"
            )
        if not qm.any() or not am.any():
            skipped.append(name)
            continue
        q_idx, a_idx = np.nonzero(qm)[0], np.nonzero(am)[0]
        # curves end where the archive does (they are flat beyond): a large --plot-k costs nothing
        k_max = max(k, min(curve_k or k, len(a_idx)))
        if len(q_idx) * k_max > _MAX_RANKED:
            raise CsmoeError(
                f"{name}: --k {k} is far beyond the archive's {len(a_idx)} item(s); the ranked "
                f"lists of {len(q_idx)} queries would not fit in memory (use --k <= {len(a_idx)})"
            )
        done = 0

        def _tick(n: int, _name: str = name, _total: int = len(q_idx)) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(_name, done, _total)

        try:
            result = cosine_search(
                embeddings.emb[src][q_idx],
                embeddings.emb[dst][a_idx],
                k_max,
                query_ids=embeddings.patch_id[q_idx],
                archive_ids=embeddings.patch_id[a_idx],
                device=dev,
                chunk_size=chunk_size,
                progress=_tick,
            )
        except ValueError as exc:
            raise CsmoeError(f"{name}: {exc}") from exc
        curves = retrieval_curves(labels[q_idx], labels[a_idx], result.indices)
        # beyond the largest list actually retrieved the curves are flat: cut them there (but keep k)
        n_curve = max(k, int(result.n_retrieved.max()) if len(q_idx) else k)
        report.curves[name] = {m: np.asarray(curves[m])[:n_curve] for m in METRICS}
        report.metrics[name] = {f"{m}@{k}": float(np.asarray(curves[m])[k - 1]) for m in METRICS}
        report.counts[name] = {
            "queries": int(curves["n_queries"]),
            "archive": len(a_idx),
            "queries_without_labels": int(curves["n_queries_without_labels"]),
        }
        without[name] = {"queries": q_missing, "archive": a_missing}
        if k >= len(a_idx):
            warnings.append(
                f"{name}: --k {k} is not below the archive's {len(a_idx)} item(s): every query "
                "retrieves (almost) the whole archive, so @k figures say little"
            )
    if not report.metrics:
        raise CsmoeError("no retrieval direction could be computed (no embeddings for the sensors)")
    report.meta = {
        "labels_column": column,
        "n_classes": len(classes),
        "queries": queries or "all",
        "archive": archive or "all",
        "self_exclusion": "by patch_id",
        "similarity": "cosine",
        "device": str(dev),
        "skipped": skipped,
        "warnings": warnings,
        "without_embedding": without,
        "model": embeddings.metadata.get("model"),
    }
    return report
