"""Smoke test of the whole-step GPU benchmark on the CPU: it builds its step from ``train_step``.

No timing is asserted; the run must finish and report finite, self-consistent figures.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest


def test_bench_train_gpu_runs_the_training_step_on_cpu(repo_root, tmp_path, monkeypatch) -> None:
    path = repo_root / "benchmarks" / "bench_train_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_train_gpu", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_train_gpu"] = mod
    spec.loader.exec_module(mod)
    from csmoe_model.train.step import train_step

    assert mod.train_step is train_step  # the benchmark times the library's step, not a copy
    out = tmp_path / "bench.json"
    argv = ["bench_train_gpu.py", "--model", "csmoe-tiny", "--device", "cpu", "--batch", "4",
            "--steps", "3", "--pairs", "16", "--workers", "0", "--cache-dir", str(tmp_path / "c"),
            "--json", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    mod.main()
    res = json.loads(out.read_text())
    assert res["model"] == "csmoe-tiny" and res["batch"] == 4 and res["peak_flops"] is None
    assert res["s_per_step_loader"] > 0 and res["s_per_step_no_data"] > 0
    assert res["pairs_per_s_loader"] == pytest.approx(4 / res["s_per_step_loader"])
    assert res["train_gflops_per_pair"] > 0
