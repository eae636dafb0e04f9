"""``csmoe-data grid`` through Typer's CliRunner: the README example, overwrite rule, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.footprints import load_footprints

runner = CliRunner()


def test_cli_grid_readme_example(tmp_path: Path) -> None:
    out = tmp_path / "grid.parquet"
    result = runner.invoke(
        app, ["grid", "--bbox", "12.9,47.9,13.1,48.1", "--cell-size", "1200", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "cells in 1 UTM zone" in result.output
    fp = load_footprints(out)
    assert len(fp) > 200 and set(fp.table["crs"]) == {"EPSG:32633"}
    # existing output without --overwrite: one line, non-zero exit, file untouched
    before = out.read_bytes()
    again = runner.invoke(
        app, ["grid", "--bbox", "0,0,1,1", "--cell-size", "1200", "--out", str(out)]
    )
    assert again.exit_code != 0
    assert "exists" in again.output and "Traceback" not in again.output
    assert out.read_bytes() == before
    ok = runner.invoke(
        app,
        [
            "grid",
            "--bbox",
            "179.5,-0.2,-179.5,0.2",
            "--cell-size",
            "10000",
            "--out",
            str(out),
            "--overwrite",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "4 UTM zones" in ok.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--bbox", "0,0,10,10", "--cell-size", "100", "--max-cells", "1000"], "max-cells"),
        (["--bbox", "0,0,1", "--cell-size", "1000"], "4 finite numbers"),
        (["--bbox", "0,0,1,1", "--cell-size", "-5"], "positive"),
    ],
)
def test_cli_grid_errors(tmp_path: Path, args: list[str], match: str) -> None:
    out = tmp_path / "g.gpkg"
    result = runner.invoke(app, ["grid", *args, "--out", str(out)])
    assert result.exit_code != 0
    assert match in result.output and "Traceback" not in result.output
    assert not out.exists()
