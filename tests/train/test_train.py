"""End-to-end training: CLI runs, exact resume, kill-safe checkpoints, NaN stop, export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from csmoe_cli.model_app import app
from csmoe_model import build_model
from csmoe_model.errors import CsmoeError
from csmoe_model.train import TrainConfig, load_latest_checkpoint, load_run, train
from csmoe_model.train.checkpoint import list_checkpoints
from csmoe_model.train.loop import NonFiniteLoss
from csmoe_model.train.schedule import build_optimizer, lr_factor

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


def test_cli_train_on_generated_patches(patches, cache_dir, tmp_path) -> None:
    manifest, _ = patches
    run = tmp_path / "run"
    args = ["train", "--manifest", str(manifest), "--model", "csmoe-tiny", "--out", str(run),
            "--max-steps", "4", "--batch-size", "4", "--device", "cpu", "--workers", "0",
            "--cache-dir", str(cache_dir), "--split", "train", "--log-every", "1",
            "--checkpoint-every", "2", "--model-arg", "img_size=16", "--no-progress"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "trained csmoe-tiny for 4 steps" in res.output
    assert '"max_steps": 4' in res.output  # the resolved configuration is printed
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["total_steps"] == 4 and cfg["model"]["config"]["img_size"] == 16
    assert len(cfg["data"]["normalization"]["s2_mean"]) == 12 and cfg["data"]["rows"] == 12
    rows = _losses(run)
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in (
        "step",
        "loss",
        "uni_s1",
        "cross_s2",
        "contrastive",
        "lr",
        "pairs_per_s",
        "elapsed_s",
    ):
        assert col in header
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        "step_00000002.pt",
        "step_00000004.pt",
    ]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    model, info = load_run(run)
    assert info["model"]["name"] == "csmoe-tiny"
    emb = model.encode(s1=torch.zeros(2, 2, 16, 16), s2=torch.zeros(2, 12, 16, 16))
    assert emb["s2"].shape == (2, 64)
    # the same RUN_DIR again: refused without --resume/--overwrite, accepted with --overwrite
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "--resume" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, [*args, "--overwrite", "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    assert [r[0] for r in _losses(run)] == [1, 2]


def test_readme_examples_on_the_real_sample(tmp_path, cache_dir) -> None:
    from csmoe_cli.data_app import app as data_app

    # the manifest as csmoe-data writes it (the contract between the two halves)
    manifest = tmp_path / "bigearthnet.parquet"
    res = runner.invoke(data_app, ["build-manifest", "--footprints", "sample:bigearthnet", "--landcover",
                                   "sample:modis-igbp", "--landcover-legend", "modis-igbp", "--climate",
                                   "sample:koppen-rubel", "--climate-legend", "koppen-rubel", "--out", str(manifest)])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["cache", "--manifest", str(manifest), "--cache-dir", str(cache_dir), "--workers", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "6 rows (6 usable), 120 px" in res.output
    run = tmp_path / "runs" / "tiny"
    res = runner.invoke(app, ["train", "--manifest", str(manifest), "--model", "csmoe-tiny", "--out", str(run),
                              "--max-steps", "3", "--batch-size", "6", "--lr", "1e-3", "--device", "cpu",
                              "--cache-dir", str(cache_dir)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "reusing imagery cache" in res.output
    ids = json.loads((run / "config.json").read_text())["data"]
    assert ids["rows"] == 6 and ids["cache_size"] == 120
    # the exported encoder loads into the preset as it is (the loader resized 120 px to 32 px)
    from safetensors.torch import load_file

    fresh = build_model("csmoe-tiny")
    sd = load_file(str(run / "model.safetensors"))
    fresh.load_encoder_state_dict(sd)
    for k, v in fresh.encoder_state_dict().items():
        torch.testing.assert_close(v, sd[k])


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
    real_save = torch.save
    calls = {"n": 0}

    def dying_save(obj, f, *a, **k):
        calls["n"] += 1
        if (
            calls["n"] == 2
        ):  # second checkpoint: half the bytes reach the disk, then the process "dies"
            real_save(obj, f, *a, **k)
            data = Path(f).read_bytes()
            Path(f).write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(manifest, run, cache_dir, max_steps=4), log=lambda m: None, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
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


def test_optimizer_groups_and_schedule() -> None:
    model = build_model("csmoe-tiny")
    cfg = TrainConfig(lr=1e-3)
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert no_decay == model.no_weight_decay() and opt.param_groups[1]["weight_decay"] == 0.0
    assert opt.param_groups[0]["weight_decay"] == 0.05 and opt.defaults["betas"] == (0.9, 0.95)
    assert [lr_factor(s, 4, 10) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(7, 4, 10) == pytest.approx(0.5) and lr_factor(10, 4, 10) == pytest.approx(0.0)


def test_config_file_and_command_line(patches, cache_dir, tmp_path) -> None:
    manifest, _ = patches
    conf = tmp_path / "train.toml"
    conf.write_text(
        f'model = "csmoe-tiny"\nbatch_size = 4\nmax_steps = 5\nlr = 0.002\nworkers = 0\ndevice = "cpu"\n'
        f'cache_dir = "{cache_dir}"\nsplit = "train"\n[model_overrides]\nimg_size = 16\n'
    )
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--manifest", str(manifest), "--out", str(run), "--config", str(conf),
                              "--max-steps", "2", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    saved = json.loads((run / "config.json").read_text())["train"]
    assert (
        saved["max_steps"] == 2
        and saved["lr"] == 0.002
        and saved["model_overrides"] == {"img_size": 16}
    )
    res = runner.invoke(app, ["train", "--manifest", str(manifest), "--out", str(tmp_path / "x"),
                              "--max-steps", "2", "--epochs", "1"])  # fmt: skip
    assert res.exit_code != 0 and "not both" in res.output


def test_cli_cache_warns_about_damaged_images_and_strict_stops(patches, cache_dir) -> None:
    manifest, rows = patches
    next((manifest.parent / rows[5]["s1_path"]).glob("*_VV.tif")).write_bytes(b"\x00" * 64)
    base = [
        "cache",
        "--manifest",
        str(manifest),
        "--cache-dir",
        str(cache_dir),
        "--workers",
        "0",
        "--no-progress",
    ]
    res = runner.invoke(app, [*base, "--strict"])
    assert (
        res.exit_code == 1
        and "damaged image in row 5" in res.output
        and "Traceback" not in res.output
    )
    res = runner.invoke(app, base)
    assert res.exit_code == 0, res.output
    assert (
        "16 rows (15 usable)" in res.output and "warning: 1 damaged image(s) skipped" in res.output
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(patches, cache_dir, tmp_path) -> None:
    manifest, _ = patches
    res = runner.invoke(app, ["train", "--manifest", str(manifest), "--model", "csmoe-tiny", "--out",
                              str(tmp_path / "r"), "--device", "cuda", "--cache-dir", str(cache_dir)])  # fmt: skip
    assert res.exit_code == 1 and "no CUDA device" in res.output
