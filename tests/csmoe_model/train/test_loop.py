"""End-to-end training: CLI runs, exact resume, kill-safe checkpoints, NaN stop, export."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from csmoe_model.errors import CsmoeError
from csmoe_model.train import TrainConfig, load_latest_checkpoint, load_run, train
from csmoe_model.train.loop import NonFiniteLoss

runner = CliRunner()


def _cfg(manifest: Path, out: Path, cache_dir: Path, **kw) -> TrainConfig:
    base = {
        "manifest": str(manifest), "model": "csmoe-tiny", "out": str(out), "max_steps": 6,
        "batch_size": 4, "device": "cpu", "seed": 1, "checkpoint_every": 2, "log_every": 1,
        "workers": 0, "cache_dir": str(cache_dir), "split": "train",
        "model_overrides": {"img_size": 16},
    }  # fmt: skip
    return TrainConfig.from_dict(base | kw)


def _losses(run: Path) -> list[tuple[int, float, float]]:
    with open(run / "metrics.csv", newline="") as fh:
        return [
            (int(r["step"]), float(r["loss"]), float(r["contrastive"])) for r in csv.DictReader(fh)
        ]


def test_resume_continues_exactly(patches, cache_dir, tmp_path) -> None:
    manifest, _ = patches
    full = train(_cfg(manifest, tmp_path / "full", cache_dir), log=lambda m: None, progress=False)
    assert full.steps == 6

    def kill_after_5(step: int, loss: float) -> None:
        if step == 5:  # the checkpoint of step 4 exists; step 5 is lost with the "kill"
            raise KeyboardInterrupt

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        train(
            _cfg(manifest, part, cache_dir),
            log=lambda m: None,
            progress=False,
            on_step=kill_after_5,
        )
    assert not (part / "model.safetensors").exists()
    notes: list[str] = []
    resumed = train(_cfg(manifest, part, cache_dir), resume=True, log=notes.append, progress=False)
    assert any("from step_00000004.pt" in n for n in notes)
    assert resumed.steps == 6
    assert _losses(part) == _losses(tmp_path / "full")  # rows 5 and 6 recomputed, bit-identical
    a, b = load_run(tmp_path / "full")[0], load_run(part)[0]
    for (k, v), w in zip(
        a.encoder_state_dict().items(), b.encoder_state_dict().values(), strict=True
    ):
        torch.testing.assert_close(v, w, msg=k)
    # a resumed run keeps its own settings: changing one that alters the computation is refused
    with pytest.raises(CsmoeError, match=r"lr \(0.0005 in the run, 0.1 given\)"):
        train(
            _cfg(manifest, part, cache_dir),
            resume=True,
            given={"lr": 0.1},
            log=lambda m: None,
            progress=False,
        )


def test_checkpoint_survives_a_kill_while_writing(
    patches, cache_dir, tmp_path, monkeypatch
) -> None:
    manifest, _ = patches
    run = tmp_path / "run"
    import csmoe_model.train.checkpoint as checkpoint

    real_save = checkpoint.save_torch
    calls = {"n": 0}

    def dying_save(obj, f):
        calls["n"] += 1
        if (
            calls["n"] == 2
        ):  # second checkpoint: half the bytes reach the disk, then the process "dies"
            real_save(obj, f)
            data = Path(f).read_bytes()
            Path(f).write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt
        return real_save(obj, f)

    monkeypatch.setattr(checkpoint, "save_torch", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(manifest, run, cache_dir, max_steps=4), log=lambda m: None, progress=False)
    monkeypatch.setattr(checkpoint, "save_torch", real_save)
    ckpts = run / "checkpoints"
    assert [p.name for p in ckpts.iterdir() if p.name.endswith(".tmp")] == []
    path, ckpt = load_latest_checkpoint(ckpts)
    assert path.name == "step_00000002.pt" and ckpt["step"] == 2
    assert (ckpts / "latest").read_text().strip() == "step_00000002.pt"
    done = train(
        _cfg(manifest, run, cache_dir, max_steps=4), resume=True, log=lambda m: None, progress=False
    )
    assert done.steps == 4 and (run / "model.safetensors").is_file()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    patches, cache_dir, tmp_path, monkeypatch
) -> None:
    from csmoe_model.models.csmoe import CSMoE

    manifest, _ = patches
    real_forward = CSMoE.forward
    calls = {"n": 0}

    def forward(self, *a, **k):
        out = real_forward(self, *a, **k)
        calls["n"] += 1
        if calls["n"] >= 3:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(CSMoE, "forward", forward)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"nan before step 3.*last good checkpoint"):
        train(_cfg(manifest, run, cache_dir, max_steps=4), log=lambda m: None, progress=False)
    path, ckpt = load_latest_checkpoint(run / "checkpoints")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
