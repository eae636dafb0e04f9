"""DDP under torchrun: 2 CPU processes with the gloo backend, a few steps on generated patches."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

from csmoe_model.train import load_latest_checkpoint, load_run


def test_torchrun_two_cpu_processes(patches, cache_dir, tmp_path) -> None:
    manifest, _ = patches
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "csmoe_cli.model_app", "train", "--manifest", str(manifest), "--model", "csmoe-tiny",
           "--out", str(run), "--max-steps", "3", "--batch-size", "8", "--device", "cpu", "--workers", "0",
           "--cache-dir", str(cache_dir), "--log-every", "1", "--checkpoint-every", "3",
           "--model-arg", "img_size=16", "--no-progress"]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("trained csmoe-tiny for 3 steps") == 1  # only rank 0 reports and writes
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["contrastive"]) > 0 for r in rows)
    _, ckpt = load_latest_checkpoint(run / "checkpoints")
    assert len(ckpt["rng"]) == 2 and ckpt["data"]["world"] == 2
    model, info = load_run(run)
    assert info["data"]["world_size"] == 2 and info["data"]["batch_size_per_process"] == 4
