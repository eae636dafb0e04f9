"""Multi-label scene classification on frozen embeddings: a linear probe and a kNN classifier.

Linear probe: features standardised with the ``train`` rows' mean and deviation, one-vs-rest
logistic regression (scikit-learn, L2, lbfgs) per class, trained on ``train``; the inverse
regularisation strength C is chosen from a log grid by macro mAP on ``val`` (ties: the better val
micro F1 at 0.5, then the smaller C); the model trained with that C is reported on ``test``. The grid
is walked from the smallest C up, each fit warm-started from the previous one (same optimum, far
fewer iterations). A class without positives (or without negatives) in ``train`` gets a constant
score, its training prevalence. Without ``val`` rows, C = 1 is used and the report says so.

kNN classifier: the ``train`` rows are the archive; each ``test`` row's k = 20 nearest by cosine vote
with their similarity (negative similarities count 0; if all are, votes are equal):
``score_c = sum_j w_j y_jc / sum_j w_j``, a value in [0, 1] thresholded at 0.5 like a probability.

``--sensor both`` concatenates the two sensors' embeddings (for kNN each is L2-normalised first, so
that both weigh the same in the cosine).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from csmoe_common.device import resolve_device
from csmoe_model.errors import CsmoeError
from csmoe_model.eval.embeddings import EmbeddingSet
from csmoe_model.eval.metrics import cosine_search, multilabel_metrics
from csmoe_model.eval.options import PROBE_CS, PROBE_KNN_K, PROBE_SENSOR

__all__ = ["DEFAULT_CS", "ProbeReport", "evaluate_probe", "features", "knn_scores", "linear_probe"]

#: inverse regularisation strengths tried on ``val``
DEFAULT_CS: tuple[float, ...] = PROBE_CS
SUMMARY: tuple[str, ...] = ("macro_map", "micro_map", "macro_f1", "micro_f1")


def features(embeddings: EmbeddingSet, sensor: str, normalize_each: bool = False) -> np.ndarray:
    """Feature matrix for ``sensor`` (``s1``, ``s2`` or ``both`` = concatenation).

    Args:
        embeddings: the embeddings.
        sensor: ``s1``, ``s2`` or ``both``.
        normalize_each: L2-normalise each sensor's embedding before concatenating.

    Raises:
        CsmoeError: on an unknown sensor or missing embeddings.
    """
    sensors = {"s1": ["s1"], "s2": ["s2"], "both": ["s1", "s2"]}.get(sensor)
    if sensors is None:
        raise CsmoeError(f"--sensor must be s1, s2 or both, not {sensor!r}")
    parts = []
    for s in sensors:
        if s not in embeddings.emb:
            raise CsmoeError(f"the embeddings have no {s} column (emb_{s})")
        x = embeddings.emb[s]
        if normalize_each:
            x = np.where(np.isfinite(x), x, 0.0)
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            x = np.where(embeddings.has_embedding(s)[:, None], x, np.nan)
        parts.append(np.asarray(x, dtype=np.float32))
    return np.concatenate(parts, axis=1)


@dataclass
class ProbeReport:
    """Result of :func:`evaluate_probe`.

    Attributes:
        linear: test metrics of the linear probe plus ``C`` and ``val_macro_map`` per C.
        knn: test metrics of the kNN classifier plus ``k``.
        meta: sensor, labels column, classes, row counts.
    """

    linear: dict[str, Any] = field(default_factory=dict)
    knn: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: ``{"linear": {...}, "knn": {...}, "meta": {...}}``."""
        return {"linear": self.linear, "knn": self.knn, "meta": self.meta}


def _fit_one_vs_rest(
    x: np.ndarray,
    y: np.ndarray,
    c: float,
    seed: int,
    max_iter: int,
    previous: list[Any] | None = None,
) -> list[Any]:
    """One logistic regression per class; ``previous`` (the fit at the last, smaller C) warm-starts."""
    from sklearn.linear_model import LogisticRegression

    models: list[Any] = []
    for j in range(y.shape[1]):
        col = y[:, j]
        if col.all() or not col.any():
            models.append(float(col.mean()))  # constant: nothing to separate
            continue
        prev = previous[j] if previous is not None else None
        if isinstance(prev, LogisticRegression):
            # the optimum moves little from one C to the next; starting there saves most iterations
            clf = copy.deepcopy(prev)
            clf.set_params(C=c, warm_start=True)
        else:
            clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings():
            # small C on tiny sets may stop at max_iter; the val score judges the result anyway
            warnings.simplefilter("ignore")
            clf.fit(x, col)
        models.append(clf)
    return models


def _predict(models: list[Any], x: np.ndarray) -> np.ndarray:
    out = np.empty((x.shape[0], len(models)), dtype=np.float64)
    for j, m in enumerate(models):
        out[:, j] = m if isinstance(m, float) else m.predict_proba(x)[:, 1]
    return out


def linear_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    classes: Sequence[str] | None = None,
    cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
    max_iter: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train one-vs-rest logistic regression on standardised features; choose C on val.

    Args:
        x_train: training features (N, D).
        y_train: their multi-hot labels (N, C).
        x_val: validation features for choosing C (``None``: C = 1).
        y_val: their labels.
        x_test: features of the set reported on.
        y_test: their labels.
        classes: class names for the report.
        cs: the C grid.
        seed: random state of the solver.
        max_iter: solver iterations.
        progress: called as ``progress(done, total)`` over the C grid.

    Returns:
        :func:`~csmoe_model.eval.metrics.multilabel_metrics` on test, plus ``C``, ``C_selection``,
        ``val_macro_map`` and ``val_micro_f1`` (C -> score).

    Raises:
        CsmoeError: if the training set is empty.
    """
    from sklearn.preprocessing import StandardScaler

    if len(x_train) == 0:
        raise CsmoeError("the linear probe needs rows with split 'train'")
    scaler = StandardScaler().fit(x_train)
    xt, xte = scaler.transform(x_train), scaler.transform(x_test)
    use_val = x_val is not None and y_val is not None and len(x_val) > 0 and y_val.any()
    grid = list(cs) if use_val else [1.0]
    xv = scaler.transform(x_val) if use_val else None
    best: tuple[float, tuple[float, float], list[Any]] | None = None
    val_scores: dict[str, float | None] = {}
    val_f1: dict[str, float | None] = {}
    models: list[Any] | None = None
    for i, c in enumerate(sorted(grid)):
        models = _fit_one_vs_rest(xt, y_train, c, seed, max_iter, previous=models)
        if use_val:
            assert xv is not None and y_val is not None
            m = multilabel_metrics(y_val, _predict(models, xv))
            val_scores[repr(float(c))] = m["macro_map"]
            val_f1[repr(float(c))] = m["micro_f1"]
            # macro mAP ranks the C values; equal mAP (common when val is easy) goes to the better
            # micro F1 at 0.5, then to the stronger regularisation (earlier in the ascending grid)
            key = (np.nan_to_num(m["macro_map"], nan=-1.0), np.nan_to_num(m["micro_f1"], nan=-1.0))
            if best is None or key > best[1]:
                best = (c, key, models)
        else:
            best = (c, (float("nan"), float("nan")), models)
        if progress is not None:
            progress(i + 1, len(grid))
    assert best is not None
    result = multilabel_metrics(y_test, _predict(best[2], xte), classes=classes)
    result.update(
        C=float(best[0]),
        C_selection="val macro mAP" if use_val else "fixed (no val rows)",
        val_macro_map=val_scores,
        val_micro_f1=val_f1,
    )
    return result


def knn_scores(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_query: np.ndarray,
    *,
    k: int = 20,
    train_ids: Sequence[str] | None = None,
    query_ids: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Similarity-weighted kNN label scores in [0, 1], shape (Q, C).

    Raises:
        ValueError: on bad inputs (see :func:`~csmoe_model.eval.metrics.cosine_search`).
    """
    # beyond the training set a neighbour list only grows padding (weight 0): search no further,
    # so a huge k costs nothing
    k = max(1, min(k, len(x_train))) if k >= 1 else k
    res = cosine_search(
        x_query, x_train, k, query_ids=query_ids, archive_ids=train_ids, device=device
    )
    valid = res.indices >= 0
    w = np.where(valid, np.clip(np.nan_to_num(res.scores, nan=0.0), 0.0, None), 0.0)
    # all neighbours dissimilar: fall back to equal votes among the retrieved
    flat = w.sum(axis=1) <= 0
    w[flat] = valid[flat].astype(np.float64)
    votes = y_train[np.where(valid, res.indices, 0)].astype(np.float64)  # (Q, k, C)
    total = w.sum(axis=1, keepdims=True)
    return np.einsum("qk,qkc->qc", w, votes) / np.where(total > 0, total, 1.0)


def evaluate_probe(
    embeddings: EmbeddingSet,
    *,
    labels_column: str | None = None,
    sensor: str = PROBE_SENSOR.value,
    knn_k: int = PROBE_KNN_K,
    cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> ProbeReport:
    """Linear probe and kNN classifier: train on ``train``, choose C on ``val``, report on ``test``.

    Rows without the sensor's embedding or without labels are left out (counted in ``meta``).

    Raises:
        CsmoeError: on a missing label column, sensor, ``train`` or ``test`` rows, or a seed
            outside 0..2**32 - 1 (the solver's random state).
    """
    if not 0 <= seed < 2**32:
        raise CsmoeError(f"--seed must be in 0..{2**32 - 1}, got {seed}")
    column = embeddings.label_column(labels_column)
    labels, classes = embeddings.label_matrix(column)
    x = features(embeddings, sensor)
    xk = features(embeddings, sensor, normalize_each=True)
    usable = np.isfinite(x).all(axis=1) & labels.any(axis=1)
    split = np.array([str(s) if s is not None else "" for s in embeddings.split])
    masks = {name: usable & (split == name) for name in ("train", "val", "test")}
    for name in ("train", "test"):
        if not masks[name].any():
            raise CsmoeError(
                f"the probe needs labelled rows with split '{name}' (manifests get splits from "
                "csmoe-data build-manifest --split)"
            )
    dev = resolve_device(device)
    tr, va, te = masks["train"], masks["val"], masks["test"]
    linear = linear_probe(
        x[tr],
        labels[tr],
        x[va] if va.any() else None,
        labels[va] if va.any() else None,
        x[te],
        labels[te],
        classes=classes,
        cs=cs,
        seed=seed,
        progress=progress,
    )
    scores = knn_scores(
        xk[tr],
        labels[tr],
        xk[te],
        k=knn_k,
        train_ids=embeddings.patch_id[tr],
        query_ids=embeddings.patch_id[te],
        device=dev,
    )
    knn = multilabel_metrics(labels[te], scores, classes=classes)
    knn["k"] = knn_k
    no_embedding = int((~np.isfinite(x).all(axis=1)).sum())
    warnings = []
    if no_embedding:
        warnings.append(
            f"{no_embedding} row(s) have no finite {sensor} embedding (NaN) and were left out"
        )
    if int(tr.sum()) < knn_k:
        warnings.append(
            f"the kNN probe has {int(tr.sum())} training row(s), fewer than its k = {knn_k}: every "
            "neighbour list is the whole training set"
        )
    meta = {
        "sensor": sensor,
        "labels_column": column,
        "classes": classes,
        "rows": {name: int(m.sum()) for name, m in masks.items()},
        "rows_left_out": int((~usable).sum()),
        "rows_without_embedding": no_embedding,
        "warnings": warnings,
        "model": embeddings.metadata.get("model"),
        "seed": seed,
    }
    return ProbeReport(linear=linear, knn=knn, meta=meta)
