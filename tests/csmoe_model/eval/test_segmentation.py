"""Segmentation metrics against scikit-learn on random and hand-made confusion matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score, jaccard_score

from csmoe_model.errors import CsmoeError
from csmoe_model.eval.segmentation import ConfusionMatrix, confusion_matrix, segmentation_metrics


def test_matrix_and_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    c = 5
    target = rng.integers(0, c, (7, 24, 24))
    pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, c, target.shape))
    target[0, :5] = 255  # ignored
    keep = target != 255
    cm = confusion_matrix(target, pred, c, ignore_index=255)
    expected = sk_confusion(target[keep], pred[keep], labels=list(range(c)))
    assert (cm == expected).all()
    m = segmentation_metrics(cm)
    iou = jaccard_score(target[keep], pred[keep], labels=list(range(c)), average=None)
    f1 = f1_score(target[keep], pred[keep], labels=list(range(c)), average=None)
    assert [m["per_class_iou"][str(i)] for i in range(c)] == pytest.approx(iou, abs=1e-12)
    assert [m["per_class_f1"][str(i)] for i in range(c)] == pytest.approx(f1, abs=1e-12)
    assert m["miou"] == pytest.approx(iou.mean(), abs=1e-12)
    assert m["overall_accuracy"] == pytest.approx((target[keep] == pred[keep]).mean(), abs=1e-12)
    assert m["pixels"] == int(keep.sum())


def test_accumulating_batches_equals_one_matrix_of_all_pixels() -> None:
    # per-patch averaging would weigh the 2-pixel patch like the 100-pixel one; the matrix does not
    rng = np.random.default_rng(0)
    acc = ConfusionMatrix(3, ignore_index=-1)
    ts, ps = [], []
    for n in (100, 2, 37):
        t = torch.from_numpy(rng.integers(-1, 3, n))
        p = torch.from_numpy(rng.integers(0, 3, n))
        acc.update(t, p)
        ts.append(t.numpy())
        ps.append(p.numpy())
    t, p = np.concatenate(ts), np.concatenate(ps)
    assert (acc.matrix == confusion_matrix(t, p, 3, ignore_index=-1)).all()
    assert acc.ignored == int((t == -1).sum())


def test_class_absent_from_reference_and_prediction_has_no_iou() -> None:
    cm = np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]])
    m = segmentation_metrics(cm, ["a", "b", "c"])
    assert m["per_class_iou"]["c"] is None and m["per_class_f1"]["c"] is None
    assert m["miou"] == pytest.approx((3 / 4 + 4 / 5) / 2)
    empty = segmentation_metrics(np.zeros((2, 2), dtype=int))
    assert math.isnan(empty["miou"]) and math.isnan(empty["overall_accuracy"])


def test_out_of_range_indices_and_bad_shapes_are_errors() -> None:
    with pytest.raises(CsmoeError, match="out of range"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(CsmoeError, match="shape"):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int), 3)
    with pytest.raises(CsmoeError, match="square"):
        segmentation_metrics(np.zeros((2, 3)))
