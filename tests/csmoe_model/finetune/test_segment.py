"""``csmoe eval segment`` end to end on generated patches whose masks follow from band thresholds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sklearn.metrics import confusion_matrix
from typer.testing import CliRunner

from csmoe_cli.model_app import app
from csmoe_model.finetune import FinetuneConfig, finetune

#: the mask values the signal_data fixture writes (see conftest.py)
LAND, WATER, NODATA = 10, 80, 0

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
    assert report["classes"] == [str(LAND), str(WATER)]
    # the predicted GeoTIFFs, read back against the reference masks, give the same matrix
    files = sorted(preds.glob("*.tif"))
    assert len(files) == 8
    ref_all, pred_all = [], []
    for f in files:
        with rasterio.open(f) as p, rasterio.open(signal_data["root"] / "masks" / f.name) as r:
            assert p.crs == r.crs and p.transform == r.transform and p.shape == r.shape
            pred, ref = p.read(1), r.read(1)
        keep = ref != NODATA
        ref_all.append(ref[keep])
        pred_all.append(pred[keep])
    ref, pred = np.concatenate(ref_all), np.concatenate(pred_all)
    cm = confusion_matrix(ref, pred, labels=[LAND, WATER])
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


def test_segment_resumes_exactly_and_ignores_an_index(signal_data, tmp_path) -> None:
    def cfg(out: Path) -> FinetuneConfig:
        return FinetuneConfig(task="segment", manifest=str(signal_data["manifest"]),
                              weights=str(signal_data["weights4"]), out=str(out), max_steps=6,
                              batch_size=4, lr=5e-3, eval_every=3, checkpoint_every=2, log_every=1,
                              device="cpu", cache_dir=str(signal_data["cache"]), head_channels=16,
                              ignore_index=WATER, mode="full")  # fmt: skip

    whole = finetune(cfg(tmp_path / "whole"), progress=False, log=lambda m: None)

    def kill_after_4(step: int, loss: float) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(cfg(tmp_path / "part"), progress=False, log=lambda m: None, on_step=kill_after_4)
    finetune(cfg(tmp_path / "part"), resume=True, progress=False, log=lambda m: None)

    def rows(run: Path) -> list[tuple[str, str, str]]:
        with open(run / "metrics.csv", newline="") as fh:
            return [(r["step"], r["loss"], r["val_score"]) for r in csv.DictReader(fh)]

    assert rows(tmp_path / "part") == rows(tmp_path / "whole")
    part = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert part["confusion_matrix"] == whole.metrics["confusion_matrix"]  # type: ignore[index]
    # with water ignored, only land is a class
    assert part["classes"] == [str(LAND)] and part["ignored_pixels"] > 0
