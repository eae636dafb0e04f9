"""The README's "Data as you have it" commands, run as written on generated data of that shape:
a folder of WorldCover-coded tiles in two UTM zones, a NetCDF climate map written by xarray
(lon 0..360, no grid_mapping) and a CSV of points."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from typer.testing import CliRunner

from csmoe_cli.data_app import app
from csmoe_data.manifest import read_manifest

README = Path(__file__).resolve().parents[2] / "README.md"


def _section_commands(section: str) -> list[list[str]]:
    """The ```bash commands of one README section (continuations joined)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text[start:end], flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.strip().startswith("#"):
                out.append(shlex.split(line))
    return out


def test_readme_inputs_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, geotiff: Callable[..., Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    rng = np.random.default_rng(0)
    tiles = tmp_path / "worldcover_tiles"
    tiles.mkdir()
    codes = np.array([10, 20, 30, 40, 50, 80], dtype=np.uint8)
    # two tiles around Berlin (13.4E, zone 33) and Paris (2.35E, zone 31)
    geotiff(
        tiles / "N52E013.tif",
        rng.choice(codes, (300, 300)),
        Affine(100, 0, 380000, 0, -100, 5830000),
        crs="EPSG:32633",
    )
    geotiff(
        tiles / "N48E002.tif",
        rng.choice(codes, (300, 300)),
        Affine(100, 0, 440000, 0, -100, 5425000),
        crs="EPSG:32631",
    )
    lat = np.arange(89.75, -90, -0.5)
    lon = np.arange(0.25, 360, 0.5)
    kg = rng.integers(1, 31, (len(lat), len(lon))).astype(np.uint8)
    xr.Dataset({"kg": (("lat", "lon"), kg)}, coords={"lat": lat, "lon": lon}).to_netcdf(
        "kg_0p5deg.nc"
    )
    Path("points.csv").write_text("patch_id,lon,lat\nberlin,13.40,52.52\nparis,2.35,48.86\n")
    commands = _section_commands("## Data as you have it")
    assert len(commands) == 2
    runner = CliRunner()
    for argv in commands:
        result = runner.invoke(app, argv[1:])
        assert result.exit_code == 0, f"{' '.join(argv)}\n{result.output}"
    gdf, meta = read_manifest(tmp_path / "points.parquet")
    assert gdf["patch_id"].tolist() == ["berlin", "paris"]
    assert np.allclose(gdf["lc_valid_frac"], 1.0, atol=1e-6)
    assert np.allclose(gdf["kg_valid_frac"], 1.0, atol=1e-6)
    assert meta["inputs"]["landcover"]["tiles"] == 2
    assert any("assumed EPSG:4326" in w for w in meta["warnings"])
    assert (tmp_path / "majortom.parquet").exists()
