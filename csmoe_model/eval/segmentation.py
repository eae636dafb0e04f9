"""Semantic-segmentation metrics over one confusion matrix of all evaluated pixels.

The field (PANGAEA, GEO-Bench, mmsegmentation) accumulates a single C x C confusion matrix over every
test pixel and derives the figures from it, rather than averaging per-patch scores: a patch with 10
valid pixels then weighs 10 pixels, not one patch. Rows are the reference class, columns the
predicted class (scikit-learn's ``confusion_matrix`` convention).

- ``per_class_iou[c] = TP_c / (TP_c + FP_c + FN_c)``; a class that appears neither in the reference
  nor in the prediction has no IoU (``None`` in the report, left out of the mean).
- ``miou``: mean of the defined per-class IoUs.
- ``overall_accuracy``: trace / total (pixel accuracy).
- ``per_class_f1[c] = 2 TP_c / (2 TP_c + FP_c + FN_c)`` (the Dice score), ``macro_f1`` the mean of
  the defined ones.
- Pixels whose reference equals ``ignore_index`` are not counted at all (neither as reference nor as
  prediction); a reference value outside ``[0, C)`` is an error, never silently dropped.

Pure numpy and torch (the accumulation runs on the device the predictions are on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from csmoe_model.errors import CsmoeError

__all__ = [
    "ConfusionMatrix",
    "confusion_matrix",
    "segmentation_metrics",
]


def confusion_matrix(
    target: np.ndarray | torch.Tensor,
    pred: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int | None = None,
) -> np.ndarray:
    """The (C, C) int64 confusion matrix of one set of pixels (rows: reference, columns: prediction).

    Args:
        target: reference class indices, any shape.
        pred: predicted class indices, same shape.
        num_classes: C.
        ignore_index: reference value to leave out.

    Raises:
        CsmoeError: on a shape mismatch or a class index outside ``[0, C)``.
    """
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(torch.as_tensor(np.asarray(target)), torch.as_tensor(np.asarray(pred)))
    return cm.matrix


class ConfusionMatrix:
    """Accumulates a confusion matrix batch by batch, on the device of the batches.

    Args:
        num_classes: C.
        ignore_index: reference value to leave out (e.g. 255), or ``None``.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise CsmoeError(f"a segmentation needs at least one class, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self._counts: torch.Tensor | None = None
        self.ignored = 0

    def update(self, target: torch.Tensor, pred: torch.Tensor) -> None:
        """Add the pixels of ``target``/``pred`` (same shape, integer class indices).

        Raises:
            CsmoeError: on a shape mismatch or a class index outside ``[0, C)``.
        """
        if target.shape != pred.shape:
            raise CsmoeError(
                f"reference {tuple(target.shape)} and prediction {tuple(pred.shape)} differ in shape"
            )
        t = target.reshape(-1).to(torch.int64)
        p = pred.reshape(-1).to(device=t.device, dtype=torch.int64)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            self.ignored += int((~keep).sum())
            t, p = t[keep], p[keep]
        c = self.num_classes
        for name, v in (("reference", t), ("prediction", p)):
            if v.numel() and (int(v.min()) < 0 or int(v.max()) >= c):
                raise CsmoeError(
                    f"{name} class index out of range [0, {c}): {int(v.min())}..{int(v.max())}"
                )
        counts = torch.bincount(t * c + p, minlength=c * c).reshape(c, c)
        self._counts = counts if self._counts is None else self._counts + counts.to(self._counts)

    @property
    def matrix(self) -> np.ndarray:
        """The accumulated (C, C) int64 matrix."""
        if self._counts is None:
            return np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        return self._counts.cpu().numpy().astype(np.int64)

    def metrics(self, classes: Sequence[str] | None = None) -> dict[str, Any]:
        """:func:`segmentation_metrics` of the accumulated matrix."""
        out = segmentation_metrics(self.matrix, classes)
        out["ignored_pixels"] = self.ignored
        return out


def segmentation_metrics(cm: np.ndarray, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """mIoU, per-class IoU, overall accuracy and per-class F1 of a confusion matrix.

    Args:
        cm: (C, C) counts, rows = reference, columns = prediction.
        classes: class names for the per-class entries (default ``"0"``, ``"1"``...).

    Returns:
        ``miou``, ``overall_accuracy``, ``macro_f1`` (floats, NaN without any pixel),
        ``per_class_iou`` and ``per_class_f1`` (name -> float or ``None`` when undefined),
        ``pixels`` (evaluated pixels) and ``confusion_matrix`` (nested lists).

    Raises:
        CsmoeError: if ``cm`` is not square or ``classes`` has the wrong length.
    """
    m = np.asarray(cm, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise CsmoeError(f"a confusion matrix must be square, got shape {m.shape}")
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(len(m))]
    if len(names) != len(m):
        raise CsmoeError(f"{len(names)} class names for a {len(m)}-class confusion matrix")
    tp = np.diag(m).astype(np.float64)
    fp = m.sum(axis=0) - tp
    fn = m.sum(axis=1) - tp
    union = tp + fp + fn
    defined = union > 0
    iou = np.divide(tp, union, out=np.full(len(m), np.nan), where=defined)
    f1 = np.divide(2 * tp, tp + union, out=np.full(len(m), np.nan), where=defined)
    total = int(m.sum())
    nan = float("nan")
    return {
        "miou": float(iou[defined].mean()) if defined.any() else nan,
        "overall_accuracy": float(tp.sum() / total) if total else nan,
        "macro_f1": float(f1[defined].mean()) if defined.any() else nan,
        "per_class_iou": {
            n: (float(v) if d else None) for n, v, d in zip(names, iou, defined, strict=False)
        },
        "per_class_f1": {
            n: (float(v) if d else None) for n, v, d in zip(names, f1, defined, strict=False)
        },
        "pixels": total,
        "confusion_matrix": m.tolist(),
    }
