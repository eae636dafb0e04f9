"""``csmoe study`` through the CLI: two tiny models, every task, the report, and resumption."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from csmoe_cli.model_app import app

runner = CliRunner()


def test_study_runs_every_task_writes_the_report_and_resumes(signal_data, tmp_path) -> None:
    out = tmp_path / "study"
    args = ["study", "--manifest", str(signal_data["manifest"]), "--models", "csmae-tiny,csmoe-tiny",
            "--budget", "2", "--batch-size", "4", "--finetune-steps", "2", "--segment-steps", "2",
            "--model-arg", "img_size=16", "--device", "cpu", "--cache-dir", str(signal_data["cache"]),
            "--out", str(out), "--k", "5"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "study.json").read_text())
    assert [(c["model"], c["train_set"]) for c in report["cells"]] == [
        ("csmae-tiny", "m"),
        ("csmoe-tiny", "m"),
    ]
    for cell in report["cells"]:
        assert set(cell["retrieval_map"]) == {"s1->s1", "s2->s2", "s1->s2", "s2->s1"}
        for key in (
            "probe_linear_macro_map",
            "finetune_macro_map",
            "segment_miou",
            "encoder_gflops",
        ):
            assert cell[key] is not None, key
    dense, moe = report["cells"]
    assert moe["encoder_gflops"] < dense["encoder_gflops"]  # Soft MoE: fewer FLOPs per pair
    md = (out / "study.md").read_text()
    assert "| csmoe-tiny | m |" in md and "mIoU" in md
    assert (out / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # rerun: every cell is done, nothing trains again
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "pretraining" not in again.output
    # an interrupted cell: only its missing step runs again
    shutil.rmtree(out / "cells" / "csmoe-tiny__m" / "segment")
    third = runner.invoke(app, args)
    assert (
        third.exit_code == 0
        and "segmentation" in third.output
        and "pretraining" not in third.output
    )
    assert (
        json.loads((out / "study.json").read_text())["cells"][1]["segment_miou"]
        == moe["segment_miou"]
    )
    # the same folder with other settings is refused in one line
    other = runner.invoke(app, [*args[:-4], "--out", str(out), "--budget", "3"])
    assert other.exit_code == 1 and "other settings" in other.output
