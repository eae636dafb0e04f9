"""``build-manifest --split`` on a contiguous ``csmoe-data grid`` over the embedded samples."""

from __future__ import annotations

from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.manifest import read_manifest

runner = CliRunner()


def test_split_on_contiguous_grid_meets_shares_and_reports(tmp_path) -> None:
    grid = tmp_path / "grid.parquet"
    res = runner.invoke(
        app, ["grid", "--bbox", "5,45,9,48", "--cell-size", "5000", "--out", str(grid)]
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "m.parquet"
    args = [
        "build-manifest",
        "--footprints",
        str(grid),
        "--landcover",
        "sample:modis-igbp",
        "--landcover-legend",
        "modis-igbp",
        "--climate",
        "sample:koppen-rubel",
        "--climate-legend",
        "koppen-rubel",
        "--split",
        "train=0.8,val=0.1,test=0.1",
        "--min-valid-frac",
        "0",
        "--out",
        str(out),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "split shares" in res.stdout and "removed" in res.stdout
    gdf, meta = read_manifest(out)
    report = meta["sampling"]["split_report"]
    frac = gdf["split"].value_counts(normalize=True)
    for name, share in {"train": 0.8, "val": 0.1, "test": 0.1}.items():
        assert abs(frac[name] - share) <= 0.02
        assert abs(report["achieved"][name] - share) <= 0.02
    assert len(gdf) + report["removed"] == meta["sampling"]["eligible"]
    assert report["removed"] > 0 and report["warnings"] == []

    # a block size that leaves a single block: a warning with the reason, still exit 0
    res = runner.invoke(
        app, [*args[:-1], str(tmp_path / "w.parquet"), "--split-block-size", "5000000"]
    )
    assert res.exit_code == 0, res.output
    assert "warning" in res.stdout and "spatial block" in res.stdout
