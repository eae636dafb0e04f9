"""``csmoe finetune`` through the CLI, on generated patches whose labels follow from band statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, f1_score
from typer.testing import CliRunner

from csmoe_cli.model_app import app
from csmoe_model.finetune import load_finetuned

runner = CliRunner()


def _args(data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["finetune", "--manifest", str(data["manifest"]), "--weights", str(data["weights"]),
            "--labels-column", "labels19", "--out", str(out), "--device", "cpu", "--batch-size", "6",
            "--cache-dir", str(data["cache"]), "--no-progress", *extra]  # fmt: skip


def test_cli_linear_probe_learns_and_reports_like_scikit_learn(signal_data, tmp_path) -> None:
    out = tmp_path / "ft"
    res = runner.invoke(app, _args(signal_data, out, "--mode", "linear", "--max-steps", "24",
                                   "--lr", "0.01", "--eval-every", "8"))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "macro mAP" in res.output
    report = json.loads((out / "metrics.json").read_text())
    for f in ("config.json", "metrics.csv", "metrics.md", "model.safetensors"):
        assert (out / f).is_file(), f
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert report["selection"]["metric"] == "val macro_map" and report["rows"]["test"] == 8
    # the scores written for the test rows give the same figures through scikit-learn
    table = pq.read_table(out / "test_predictions.parquet")
    classes = report["classes"]
    scores = np.array(table.column("scores").to_pylist())
    y = np.array([[c in labs for c in classes] for labs in table.column("labels").to_pylist()])
    ap = [
        average_precision_score(y[:, c], scores[:, c]) for c in range(len(classes)) if y[:, c].any()
    ]
    assert report["macro_map"] == pytest.approx(np.mean(ap), abs=1e-9)
    assert report["micro_map"] == pytest.approx(
        average_precision_score(y.ravel(), scores.ravel()), abs=1e-9
    )
    assert report["micro_f1"] == pytest.approx(
        f1_score(y, scores >= 0.5, average="micro"), abs=1e-9
    )
    # better than the constant scorer, whose AP per class is its prevalence
    assert (
        report["macro_map"]
        > np.mean([y[:, c].mean() for c in range(len(classes)) if y[:, c].any()]) + 0.1
    )
    # the same RUN_DIR again is refused without --resume/--overwrite, in one line
    again = runner.invoke(app, _args(signal_data, out, "--max-steps", "24"))
    assert again.exit_code == 1 and "--resume" in again.output and "Traceback" not in again.output
    model, cfg = load_finetuned(out)
    assert cfg["head"]["classes"] == classes and model.head.out_features == len(classes)


def test_bad_inputs_are_one_line_errors(signal_data, tmp_path) -> None:
    both = runner.invoke(app, _args(signal_data, tmp_path / "x", "--run", str(tmp_path)))
    assert both.exit_code == 1 and "either --run" in both.output
    missing = runner.invoke(app, _args(signal_data, tmp_path / "y", "--labels-column", "nope"))
    assert missing.exit_code == 1 and "nope" in missing.output and "Traceback" not in missing.output
