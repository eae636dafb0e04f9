"""The ``csmoe`` root app: every model command registered once, one style, a light import."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from csmoe_cli.model_app import app

runner = CliRunner()


def test_help_lists_every_model_command() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0, res.output
    for command in ("model-info", "cache", "train", "embed", "eval"):
        assert f" {command} " in res.output, command
    res = runner.invoke(app, ["eval", "--help"])
    assert res.exit_code == 0 and "retrieval" in res.output and "probe" in res.output


def test_help_names_no_command_that_does_not_exist() -> None:
    for args in (["--help"], ["train", "--help"], ["embed", "--help"], ["cache", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "csmoe models" not in res.output and "list-models" not in res.output


def test_defaults_in_help_come_from_the_library() -> None:
    import typer.main

    from csmoe_model.data.cache.settings import CacheSettings
    from csmoe_model.train.config import TrainConfig

    cfg = TrainConfig()
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    helps = {p.opts[0]: p.help or "" for p in commands["train"].params}
    assert helps["--batch-size"].endswith(f"(default: {cfg.batch_size}).")
    assert helps["--model"].endswith(f"(default: {cfg.model}).")
    assert helps["--checkpoint-every"].endswith(f"(default: {cfg.checkpoint_every}).")
    assert helps["--workers"].endswith(f"(default: {cfg.workers}).")
    cache = {p.opts[0]: p.default for p in commands["cache"].params}
    assert cache["--workers"] == cfg.workers and int(cache["--bands"]) == CacheSettings().n_s2


def test_cli_import_pulls_in_no_torch() -> None:
    code = "import sys, csmoe_cli.model_app; assert 'torch' not in sys.modules, 'torch imported'"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
