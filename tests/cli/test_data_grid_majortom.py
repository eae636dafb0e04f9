"""``csmoe-data grid --scheme majortom`` and repeated single-valued options."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.footprints import load_footprints
from csmoe_data.footprints.majortom_grid import cell_id

runner = CliRunner()


def test_majortom_grid_writes_loadable_cells(tmp_path: Path) -> None:
    out = tmp_path / "mt.parquet"
    result = runner.invoke(
        app, ["grid", "--scheme", "majortom", "--bbox", "10,45,10.5,45.3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Major TOM cells (10 km)" in result.output
    cells = gpd.read_parquet(out)
    assert cells["patch_id"].str.fullmatch(r"\d+[UD]_\d+[RL]").all()
    c = cells.geometry.iloc[0].centroid
    assert cell_id(c.x, c.y) == [cells["patch_id"].iloc[0]]
    fp = load_footprints(out)
    assert len(fp.table) == len(cells) and set(fp.table["crs"]) == {"EPSG:4326"}
    coarse = tmp_path / "mt50.geojson"
    result = runner.invoke(
        app,
        [
            "grid",
            "--scheme",
            "majortom",
            "--cell-size",
            "50",
            "--bbox",
            "10,45,10.5,45.3",
            "--out",
            str(coarse),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(gpd.read_file(coarse)) < len(cells)


def test_utm_scheme_needs_a_cell_size_and_repeats_are_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["grid", "--bbox", "10,45,10.1,45.1", "--out", str(tmp_path / "g.parquet")]
    )
    assert result.exit_code == 1 and "--cell-size" in result.output
    result = runner.invoke(
        app,
        [
            "grid",
            "--bbox",
            "10,45,10.1,45.1",
            "--bbox",
            "0,0,1,1",
            "--cell-size",
            "1000",
            "--out",
            str(tmp_path / "g.parquet"),
        ],
    )
    assert result.exit_code == 2 and "--bbox is given 2 times" in result.output
    assert not (tmp_path / "g.parquet").exists()
