"""Fixtures of the training tests: BigEarthNet-layout patches and manifests generated in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

S2_GSD = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
          "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20}  # fmt: skip


def _write_tif(path: Path, arr: np.ndarray, x0: float, y0: float, gsd: float) -> None:
    from affine import Affine
    from raster_helpers import write_geotiff

    write_geotiff(path, arr, Affine(gsd, 0, x0, 0, -gsd, y0))


def make_patches(
    root: Path, n: int, size: int = 12, seed: int = 0, bands: tuple[str, ...] | None = None
) -> list[dict]:
    """Write ``n`` BigEarthNet-layout S2/S1 patch pairs (``size`` px at 10 m) under ``root``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        name2, name1 = f"S2X_MSIL2A_2020_{i}_{seed}", f"S1X_IW_GRDH_2020_{i}_{seed}"
        d2, d1 = root / "S2" / name2, root / "S1" / name1
        d2.mkdir(parents=True)
        d1.mkdir(parents=True)
        x0, y0 = 400000.0 + 10 * size * i, 5300000.0
        for band, gsd in S2_GSD.items():
            if bands is not None and band not in bands:
                continue
            s = size * 10 // gsd
            arr = (rng.integers(0, 3000, (s, s)) + 100 * i).astype(np.uint16)
            _write_tif(d2 / f"{name2}_{band}.tif", arr, x0, y0, gsd)
        for pol in ("VV", "VH"):
            arr = rng.normal(-15 if pol == "VV" else -22, 3, (size, size)).astype(np.float32)
            _write_tif(d1 / f"{name1}_{pol}.tif", arr, x0, y0, 10)
        rows.append({"patch_id": name2, "s2_path": f"S2/{name2}", "s1_path": f"S1/{name1}"})
    return rows


def write_manifest(path: Path, rows: list[dict], splits: list[str] | None = None) -> Path:
    """Write a small GeoParquet manifest (geometry = a unit box per row) with geopandas."""
    import geopandas as gpd
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame(
        rows, geometry=[box(i, 0, i + 1, 1) for i in range(len(rows))], crs="EPSG:4326"
    )
    if splits is not None:
        gdf["split"] = splits
    gdf.to_parquet(path)
    return path


@pytest.fixture
def patches(tmp_path: Path) -> tuple[Path, list[dict]]:
    """16 generated pairs at 12 px (train 12, val 4) and their manifest ``tmp_path/m.parquet``."""
    rows = make_patches(tmp_path, 16, size=12)
    splits = ["train"] * 12 + ["val"] * 4
    return write_manifest(tmp_path / "m.parquet", rows, splits), rows


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
