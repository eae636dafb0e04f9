"""Smoke test of the training-step benchmark's code path (tiny presets; no timing asserted)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

import torch


def test_bench_step_runs_and_reports(repo_root) -> None:
    path = repo_root / "benchmarks" / "bench_train_step.py"
    spec = importlib.util.spec_from_file_location("bench_train_step", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_train_step"] = mod
    spec.loader.exec_module(mod)
    args = argparse.Namespace(batch=2, steps=1, warmup=1, dtype="bf16", overrides=None)
    out = mod.bench("csmoe-tiny", args, torch.device("cpu"), compiled=False)
    assert (
        out["model"] == "csmoe-tiny" and out["pairs_per_s"] > 0 and out["train_gflops_per_pair"] > 0
    )
    assert torch.isfinite(torch.tensor(out["final_loss"]))
    name, peak = mod.device_peak(torch.device("cpu"), None)
    assert peak is None and "CPU" in name
