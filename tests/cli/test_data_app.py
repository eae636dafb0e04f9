"""The ``csmoe-data`` root app: its commands, and option defaults that are the library's."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.builder.options import BuildInputs, ExecutionOptions
from csmoe_data.footprints.options import DEFAULT_MAX_CELLS
from csmoe_data.sampling.options import SamplingOptions

runner = CliRunner()


def _defaults(command: str) -> dict[str, object]:
    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    return {p.name: p.default for p in cmd.params}


def test_help_lists_every_data_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("build-manifest", "grid", "stats"):
        assert name in result.output


def test_build_manifest_defaults_are_the_library_defaults() -> None:
    got = _defaults("build-manifest")
    sampling, execution = SamplingOptions(), ExecutionOptions()
    for name in ("n", "alpha", "seed", "min_valid_frac", "where", "min_distance", "strategy"):
        assert got[name] == getattr(sampling, name), name
    assert got["climate_level"] == sampling.climate_level
    assert got["workers"] == execution.workers
    assert got["dask_scheduler"] == execution.dask_scheduler
    assert got["id_column"] == BuildInputs.id_column
    assert got["labels_column"] == BuildInputs.labels_column


def test_grid_default_cap_is_the_library_default() -> None:
    assert _defaults("grid")["max_cells"] == DEFAULT_MAX_CELLS


def test_bad_choice_is_one_line() -> None:
    result = runner.invoke(
        app, ["build-manifest", "--pool", "x.parquet", "--out", "y.parquet", "--strategy", "nope"]
    )
    assert result.exit_code != 0
    assert "nope" in result.output and "Traceback" not in result.output
