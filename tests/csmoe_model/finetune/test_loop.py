"""The fine-tuning loop: exact resume for both tasks, settings kept on resume, ignore index."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from csmoe_model.errors import CsmoeError
from csmoe_model.finetune import FinetuneConfig, finetune


def _losses(run: Path) -> list[tuple[str, str, str, str]]:
    """Step, loss, lr and val score of every row, as written (NaN where no validation ran)."""
    with open(run / "metrics.csv", newline="") as fh:
        return [(r["step"], r["loss"], r["lr"], r["val_score"]) for r in csv.DictReader(fh)]


def test_full_finetuning_resumes_exactly(signal_data, tmp_path) -> None:
    def cfg(out: Path) -> FinetuneConfig:
        return FinetuneConfig(manifest=str(signal_data["manifest"]), weights=str(signal_data["weights"]),
                              out=str(out), mode="full", max_steps=6, batch_size=4, lr=3e-3, eval_every=3,
                              checkpoint_every=2, log_every=1, device="cpu", cache_dir=str(signal_data["cache"]),
                              labels_column="labels19", augment=True)  # fmt: skip

    whole = finetune(cfg(tmp_path / "whole"), progress=False, log=lambda m: None)

    def kill_after_4(step: int, loss: float) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(cfg(tmp_path / "part"), progress=False, log=lambda m: None, on_step=kill_after_4)
    notes: list[str] = []
    resumed = finetune(cfg(tmp_path / "part"), resume=True, progress=False, log=notes.append)
    assert any("resuming" in n and "step 4" in n for n in notes)
    assert _losses(tmp_path / "part") == _losses(tmp_path / "whole")
    assert resumed.best_step == whole.best_step
    assert resumed.metrics is not None and whole.metrics is not None
    for key in ("macro_map", "micro_map", "macro_f1", "micro_f1", "per_class_ap"):
        assert resumed.metrics[key] == whole.metrics[key], key
    # a resumed run keeps its settings: changing one that alters the computation is refused
    with pytest.raises(CsmoeError, match="lr"):
        finetune(
            cfg(tmp_path / "part"),
            resume=True,
            given={"lr": 0.5},
            progress=False,
            log=lambda m: None,
        )


def test_segment_resumes_exactly_and_ignores_an_index(signal_data, tmp_path) -> None:
    def cfg(out: Path) -> FinetuneConfig:
        return FinetuneConfig(task="segment", manifest=str(signal_data["manifest"]),
                              weights=str(signal_data["weights4"]), out=str(out), max_steps=6,
                              batch_size=4, lr=5e-3, eval_every=3, checkpoint_every=2, log_every=1,
                              device="cpu", cache_dir=str(signal_data["cache"]), head_channels=16,
                              ignore_index=signal_data['water'], mode="full")  # fmt: skip

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
    assert part["classes"] == [str(signal_data["land"])] and part["ignored_pixels"] > 0
