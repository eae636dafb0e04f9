"""Crafted manifests and --where strings: nothing from input is executed, nothing is followed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from csmoe_data.manifest import read_manifest, write_manifest

LC = [10, 40]
KG = ["Cfb", "Dfb"]


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """A 60-row descriptor pool ``tmp_path/pool.parquet``."""
    rng = np.random.default_rng(0)
    rows = 60
    lc = rng.dirichlet(np.ones(2), size=rows)
    kg = rng.dirichlet(np.ones(2), size=rows)
    data: dict[str, Any] = {"patch_id": [f"c{i:03d}" for i in range(rows)]}
    for j, c in enumerate(LC):
        data[f"lc_{c}"] = lc[:, j].astype(np.float32)
    data["lc_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["lc_major"] = pd.array(np.asarray(LC)[lc.argmax(1)], dtype="Int32")
    for j, s in enumerate(KG):
        data[f"kg_{s}"] = kg[:, j].astype(np.float32)
    data["kg_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["kg_major"] = pd.array(np.asarray(KG)[kg.argmax(1)], dtype="string")
    x = (np.arange(rows) % 10) * 0.5
    y = (np.arange(rows) // 10) * 0.5 + 40
    gdf = gpd.GeoDataFrame(data, geometry=shapely.box(x, y, x + 0.2, y + 0.2), crs="EPSG:4326")
    return write_manifest(gdf, tmp_path / "pool.parquet", {"tool": {"name": "csmoe"}})


def payloads(marker: Path) -> list[str]:
    touch = f"touch {marker}"
    return [
        f"@sys.modules['os'].system('{touch}') == 0",
        f"__import__('os').system('{touch}') == 0",
        f"lc_10.__class__.__init__.__globals__['os'].system('{touch}')",
        f"lc_10 > 0 and @pd.io.common.os.system('{touch}')",
        f"`lc_10` > 0; __import__('os').system('{touch}')",
    ]


@pytest.mark.parametrize("index", range(5))
def test_where_from_the_command_line_runs_nothing(
    index: int, pool: Path, tmp_path: Path, faults: Any
) -> None:
    marker = tmp_path / "MARKER"
    before = faults.snapshot(tmp_path)
    res = faults.invoke(
        faults.DATA_APP,
        ["build-manifest", "--pool", pool, "--where", payloads(marker)[index], "--out",
         tmp_path / "s.parquet"],
    )  # fmt: skip
    faults.assert_one_line_error(res, "--where")
    assert not marker.exists()
    assert faults.snapshot(tmp_path) == before


@pytest.mark.parametrize("index", range(5))
def test_where_recorded_in_a_manifest_runs_nothing(
    index: int, pool: Path, tmp_path: Path, faults: Any
) -> None:
    marker = tmp_path / "MARKER"
    sample, _ = read_manifest(pool)
    crafted = write_manifest(
        sample.iloc[:10],
        tmp_path / "crafted.parquet",
        {
            "pool": {"path": "pool.parquet"},
            "sampling": {"options": {"where": payloads(marker)[index], "min_valid_frac": 0.0}},
        },
    )
    before = faults.snapshot(tmp_path)
    res = faults.invoke(faults.DATA_APP, ["stats", crafted])
    faults.assert_one_line_error(res, "recorded sampling where")
    res = faults.invoke(faults.DATA_APP, ["stats", crafted, "--pool", pool])
    faults.assert_one_line_error(res, "recorded sampling where")
    assert not marker.exists()
    assert faults.snapshot(tmp_path) == before


def test_pool_path_outside_the_manifest_folder_is_not_followed(
    pool: Path, tmp_path: Path, faults: Any
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = tmp_path / "secret.parquet"
    outside.write_bytes(b"not a parquet file: reading it would fail")
    sample, _ = read_manifest(pool)
    crafted = write_manifest(
        sample.iloc[:10], elsewhere / "s.parquet", {"pool": {"path": str(outside)}}
    )
    res = faults.invoke(faults.DATA_APP, ["stats", crafted])
    assert res.code == 0, res.err
    assert "outside its folder" in res.err and "--pool" in res.err
    # a relative path climbing out is refused the same way
    crafted2 = write_manifest(
        sample.iloc[:10], elsewhere / "s2.parquet", {"pool": "../secret.parquet"}
    )
    res = faults.invoke(faults.DATA_APP, ["stats", crafted2])
    assert res.code == 0 and "outside its folder" in res.err


def test_zero_selected_rows_is_an_error_with_the_breakdown(
    pool: Path, tmp_path: Path, faults: Any
) -> None:
    res = faults.invoke(
        faults.DATA_APP,
        ["build-manifest", "--pool", pool, "--n", "50", "--where", "lc_10 > 2 and kg_Cfb >= 0",
         "--out", tmp_path / "s.parquet"],
    )  # fmt: skip
    line = faults.assert_one_line_error(res, "0 of 60 pool rows are eligible")
    assert "lc_10 > 2: 60 fail" in line and "kg_Cfb >= 0: 0 fail" in line
    assert not (tmp_path / "s.parquet").exists()


def test_fewer_rows_than_n_is_a_warning_with_the_breakdown(
    pool: Path, tmp_path: Path, faults: Any
) -> None:
    res = faults.invoke(
        faults.DATA_APP,
        ["build-manifest", "--pool", pool, "--n", "50", "--where", "lc_10 > 0.5",
         "--out", tmp_path / "s.parquet"],
    )  # fmt: skip
    assert res.code == 0, res.err
    sample, _ = read_manifest(tmp_path / "s.parquet")
    assert len(sample) < 50
    warning = [ln for ln in res.err.splitlines() if ln.startswith("warning:")]
    assert warning and "fewer than --n 50" in warning[0] and "lc_10 > 0.5:" in warning[0]


def test_grid_refuses_a_huge_grid_before_allocating_it(tmp_path: Path, faults: Any) -> None:
    res = faults.invoke(
        faults.DATA_APP,
        ["grid", "--bbox", "-10,35,30,60", "--cell-size", "10", "--max-cells", "1000000",
         "--out", tmp_path / "g.parquet"],
    )  # fmt: skip
    # refused from the bbox's area, before the billions of candidate cells are allocated
    faults.assert_one_line_error(res, "--max-cells", "from the bbox's area")
    assert not (tmp_path / "g.parquet").exists()
