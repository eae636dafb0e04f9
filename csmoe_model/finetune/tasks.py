"""The two downstream tasks: scene classification and semantic segmentation, on one interface.

A task knows its targets (scene labels from a manifest list column, or cached masks), its head,
its loss and its evaluation; :mod:`csmoe_model.finetune.loop` runs either one.

Scene classification (``classify``): a linear head on the pooled embedding (both sensors:
concatenated). Multi-label columns (BigEarthNet's ``labels19``) train with binary cross-entropy on
sigmoid scores; a column whose every labelled row holds exactly one label trains with softmax
cross-entropy. Test metrics are those of ``eval probe`` (macro/micro mAP, macro/micro F1 at the
threshold, :func:`~csmoe_model.eval.metrics.multilabel_metrics`), plus top-1 accuracy for
single-label columns; model selection uses the val macro mAP.

Semantic segmentation (``segment``): the UPerNet-style head on feature maps of several encoder
blocks, logits upsampled to the mask size, cross-entropy over the pixels that have a class;
metrics from the confusion matrix of all evaluated pixels
(:mod:`csmoe_model.eval.segmentation`); model selection uses the val mIoU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from csmoe_model.errors import CsmoeError
from csmoe_model.eval.metrics import multilabel_metrics
from csmoe_model.eval.segmentation import ConfusionMatrix
from csmoe_model.finetune.backbone import Backbone

__all__ = ["ClassificationTask", "FinetuneModel", "SegmentationTask", "TaskData"]


class FinetuneModel(nn.Module):
    """The backbone and a task head, saved and restored together."""

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head


@dataclass
class TaskData:
    """The rows a task uses per split (cache rows = manifest rows) and what describes its targets.

    Attributes:
        rows: ``train``, ``val``, ``test`` -> cache rows with usable targets (``val`` may be empty).
        classes: class names.
        info: what the report records about the targets (e.g. rows left out).
    """

    rows: dict[str, np.ndarray]
    classes: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def split_rows(
    split: np.ndarray | None, usable: np.ndarray, valid: np.ndarray
) -> dict[str, np.ndarray]:
    """Rows per split among the usable and valid ones.

    Raises:
        CsmoeError: no ``split`` column, or no usable ``train`` or ``test`` row.
    """
    if split is None:
        raise CsmoeError(
            "fine-tuning needs the manifest's split column (train/val/test; csmoe-data "
            "build-manifest --split train=0.8,val=0.1,test=0.1)"
        )
    names = np.array([str(s) if s is not None else "" for s in split])
    ok = usable & valid
    rows = {s: np.flatnonzero(ok & (names == s)).astype(np.int64) for s in ("train", "val", "test")}
    for s in ("train", "test"):
        if not len(rows[s]):
            raise CsmoeError(f"no usable row with split '{s}' (rows need imagery and targets)")
    return rows


class ClassificationTask:
    """Scene classification from a label column (see the module docstring).

    Args:
        labels: one label list per cache row (``None``/empty: unlabelled, left out).
        split: the cache's split column; valid: the cache's valid rows.
        column: the label column's name (for the report).
        threshold: decision threshold for F1.
    """

    name = "classify"
    selection_metric = "macro_map"

    def __init__(
        self,
        labels: list[list[str] | None],
        split: np.ndarray | None,
        valid: np.ndarray,
        column: str,
        threshold: float = 0.5,
    ) -> None:
        from csmoe_model.eval.metrics import multi_hot

        y, classes = multi_hot(labels)
        if not classes:
            raise CsmoeError(f"the label column {column!r} holds no label")
        labelled = np.asarray(y.any(axis=1), dtype=bool)
        self.single_label = bool(labelled.any() and (y[labelled].sum(axis=1) == 1).all())
        self.y = torch.from_numpy(y)
        self.threshold = threshold
        self.data = TaskData(
            split_rows(split, labelled, valid),
            classes,
            {
                "labels_column": column,
                "single_label": self.single_label,
                "rows_unlabelled": int((~labelled).sum()),
            },
        )

    def build_head(self, backbone: Backbone) -> nn.Module:
        """A linear layer on the pooled embedding (zero bias, truncated-normal weights as in MAE)."""
        head = nn.Linear(backbone.out_dim, len(self.data.classes))
        nn.init.trunc_normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)
        return head

    def _logits(
        self, model: FinetuneModel, s1: torch.Tensor, s2: torch.Tensor, train_encoder: bool
    ) -> torch.Tensor:
        if train_encoder:
            emb = model.backbone.pooled(s1, s2)
        else:
            with torch.no_grad():
                emb = model.backbone.pooled(s1, s2)
        return model.head(emb.float())

    def loss(self, model: FinetuneModel, batch: Any, train_encoder: bool) -> torch.Tensor:
        """BCE (multi-label) or CE (single-label) of one batch."""
        logits = self._logits(model, batch.s1, batch.s2, train_encoder)
        y = self.y[batch.index].to(logits.device)
        if self.single_label:
            return F.cross_entropy(logits, y.float().argmax(dim=1))
        return F.binary_cross_entropy_with_logits(logits, y.float())

    @torch.no_grad()
    def evaluate(
        self,
        model: FinetuneModel,
        loader: Any,
        on_batch: Callable[[Any, torch.Tensor], None] | None = None,
    ) -> dict[str, Any]:
        """Scores of every row of ``loader``; the ``eval probe`` metrics (+ accuracy if single-label)."""
        scores, index = [], []
        for batch in loader:
            logits = self._logits(model, batch.s1, batch.s2, False)
            prob = logits.softmax(dim=1) if self.single_label else logits.sigmoid()
            scores.append(prob.float().cpu().numpy())
            index.append(batch.index.numpy())
            if on_batch is not None:
                on_batch(batch, prob)
        s = np.concatenate(scores)
        idx = np.concatenate(index)
        y = self.y[idx].numpy()
        out = multilabel_metrics(y, s, threshold=self.threshold, classes=self.data.classes)
        if self.single_label:
            out["accuracy"] = float((s.argmax(axis=1) == y.argmax(axis=1)).mean())
        out["rows"] = len(idx)
        return out


class SegmentationTask:
    """Semantic segmentation from cached masks (see the module docstring).

    Args:
        masks: the opened :class:`~csmoe_model.data.masks.MaskCache`.
        split: the cache's split column; valid: the cache's valid rows.
        head_channels: width of the UPerNet pyramid.
    """

    name = "segment"
    selection_metric = "miou"

    def __init__(
        self, masks: Any, split: np.ndarray | None, valid: np.ndarray, head_channels: int
    ) -> None:
        self.masks = masks
        self.head_channels = head_channels
        self.data = TaskData(
            split_rows(split, masks.has_mask, valid),
            masks.classes,
            {
                "values": masks.values,
                "legend_source": masks.meta.get("legend_source"),
                "rows_without_mask": int((~masks.has_mask).sum()),
                "unknown_values": masks.meta.get("unknown_values", {}),
            },
        )

    def build_head(self, backbone: Backbone) -> nn.Module:
        """The UPerNet head over the backbone's ``out_indices`` maps."""
        from csmoe_model.heads.upernet import UPerNetHead

        n = len(backbone.out_indices)
        return UPerNetHead([backbone.out_dim] * n, len(self.data.classes), self.head_channels)

    def _target(self, batch: Any, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(self.masks.rows(batch.index.numpy()).astype(np.int64)).to(device)

    def _logits(
        self, model: FinetuneModel, batch: Any, size: tuple[int, int], train_encoder: bool
    ) -> torch.Tensor:
        if train_encoder:
            feats = model.backbone.features(batch.s1, batch.s2)
        else:
            with torch.no_grad():
                feats = model.backbone.features(batch.s1, batch.s2)
        return model.head([f.float() for f in feats], out_size=size)

    def loss(self, model: FinetuneModel, batch: Any, train_encoder: bool) -> torch.Tensor:
        """Pixel-wise cross-entropy over the pixels with a class (-1 is ignored)."""
        target = self._target(batch, batch.s2.device)
        logits = self._logits(
            model, batch, (int(target.shape[-2]), int(target.shape[-1])), train_encoder
        )
        if not (target >= 0).any():
            return logits.sum() * 0.0  # a batch without a labelled pixel: no signal, no NaN
        return F.cross_entropy(logits, target, ignore_index=-1)

    @torch.no_grad()
    def evaluate(
        self,
        model: FinetuneModel,
        loader: Any,
        on_batch: Callable[[Any, torch.Tensor], None] | None = None,
    ) -> dict[str, Any]:
        """Metrics of the confusion matrix of every evaluated pixel of ``loader``'s rows."""
        cm = ConfusionMatrix(len(self.data.classes), ignore_index=-1)
        rows = 0
        for batch in loader:
            target = self._target(batch, batch.s2.device)
            pred = self._logits(
                model, batch, (int(target.shape[-2]), int(target.shape[-1])), False
            ).argmax(dim=1)
            cm.update(target, pred)
            rows += len(batch.index)
            if on_batch is not None:
                on_batch(batch, pred)
        out = cm.metrics(self.data.classes)
        out["rows"] = rows
        if out["pixels"] == 0:
            raise CsmoeError("no evaluated pixel: every mask pixel of these rows is ignored")
        return out
