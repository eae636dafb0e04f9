"""``csmoe train`` through the CLI: runs, run-directory conflicts, config files, README example, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from csmoe_cli.model_app import app
from csmoe_model import build_model
from csmoe_model.train import load_run
from csmoe_model.train.checkpoint import list_checkpoints

runner = CliRunner()


def _logged_steps(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


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
    assert len(cfg["data"]["normalization"]["s2_mean"]) == 10 and cfg["data"]["rows"] == 12
    assert _logged_steps(run) == [1, 2, 3, 4]
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
    emb = model.encode(s1=torch.zeros(2, 2, 16, 16), s2=torch.zeros(2, 10, 16, 16))
    assert emb["s2"].shape == (2, 64)
    # the same RUN_DIR again: refused without --resume/--overwrite, accepted with --overwrite
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "--resume" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, [*args, "--overwrite", "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    assert _logged_steps(run) == [1, 2]


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(patches, cache_dir, tmp_path) -> None:
    manifest, _ = patches
    res = runner.invoke(app, ["train", "--manifest", str(manifest), "--model", "csmoe-tiny", "--out",
                              str(tmp_path / "r"), "--device", "cuda", "--cache-dir", str(cache_dir)])  # fmt: skip
    assert res.exit_code == 1 and "no CUDA device" in res.output
