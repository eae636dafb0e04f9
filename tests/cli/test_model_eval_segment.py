"""``csmoe eval segment`` through the CLI, on generated patches whose masks follow from band thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from sklearn.metrics import confusion_matrix
from typer.testing import CliRunner

from csmoe_cli.model_app import app

runner = CliRunner()


def test_cli_segment_learns_and_saved_predictions_reproduce_the_metrics(
    signal_data, tmp_path
) -> None:
    out, preds = tmp_path / "seg", tmp_path / "pred"
    args = ["eval", "segment", "--manifest", str(signal_data["manifest"]), "--weights",
            str(signal_data["weights4"]), "--out", str(out), "--device", "cpu", "--batch-size", "6",
            "--max-steps", "30", "--lr", "0.01", "--eval-every", "10", "--head-channels", "32",
            "--cache-dir", str(signal_data["cache"]), "--save-predictions", str(preds), "--no-progress"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "metrics.json").read_text())
    for key in ("miou", "per_class_iou", "overall_accuracy", "per_class_f1"):
        assert key in report
    assert report["classes"] == [str(signal_data["land"]), str(signal_data["water"])]
    # the predicted GeoTIFFs, read back against the reference masks, give the same matrix
    files = sorted(preds.glob("*.tif"))
    assert len(files) == 8
    ref_all, pred_all = [], []
    for f in files:
        with rasterio.open(f) as p, rasterio.open(signal_data["root"] / "masks" / f.name) as r:
            assert p.crs == r.crs and p.transform == r.transform and p.shape == r.shape
            pred, ref = p.read(1), r.read(1)
        keep = ref != signal_data["nodata"]
        ref_all.append(ref[keep])
        pred_all.append(pred[keep])
    ref, pred = np.concatenate(ref_all), np.concatenate(pred_all)
    cm = confusion_matrix(ref, pred, labels=[signal_data["land"], signal_data["water"]])
    assert cm.tolist() == report["confusion_matrix"]
    assert report["overall_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    # a head that learned beats predicting the majority class everywhere
    majority = cm.sum(axis=1).max() / cm.sum()
    assert report["overall_accuracy"] > majority + 0.15
    assert report["miou"] > 0.5
    # existing predictions are not replaced without --overwrite
    args[args.index(str(out))] = str(tmp_path / "other")
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "not empty" in again.output and "Traceback" not in again.output
