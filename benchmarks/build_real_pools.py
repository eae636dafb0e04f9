"""Build real descriptor pools unlike the 100 km global grids of ``compare_strategies.py``.

Every pool goes through the project's own CLI (``csmoe-data grid`` /
:func:`csmoe_data.footprints.grid.cells_at_points` for the footprints, then ``csmoe-data
build-manifest --landcover sample:modis-igbp --landcover-legend modis-igbp --climate
sample:koppen-rubel --climate-legend koppen-rubel``), so the descriptors are exactly what a
user gets. Pools:

- ``patches1k2``: ~20k 1.2 km UTM squares (BigEarthNet-like size) centred on uniform random
  points on the sphere that fall on land (Köppen raster not ocean) worldwide;
- ``cont10k``: 10 km UTM cells over four continental boxes (Alps/central Europe, West Africa,
  the Andes/Amazon edge, northern India/Himalaya), ~20k cells in all;
- ``globe90k``: a whole-globe 90 km grid, ocean and nodata rows kept (the sampler's
  ``--min-valid-frac 0.5`` and ``csmoe-data stats`` must both drop them).

Usage::

    python benchmarks/build_real_pools.py --out /tmp/pools            # all three
    python benchmarks/build_real_pools.py --out /tmp/pools --only cont10k
    python benchmarks/compare_strategies.py --pool /tmp/pools/patches1k2.parquet \\
        --fractions 0.01 0.02 0.05 --strategies random thematic-climatic --seeds 0 7

Then judge each pool with ``compare_strategies.py --pool FILE`` (see
`BENCHMARKS.md`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from csmoe_data.footprints.grid import cells_at_points, write_grid
from csmoe_data.samples import resolve_path

DESCRIPTORS = [
    "--landcover",
    "sample:modis-igbp",
    "--landcover-legend",
    "modis-igbp",
    "--climate",
    "sample:koppen-rubel",
    "--climate-legend",
    "koppen-rubel",
]
#: four continental boxes for ``cont10k`` (minlon, minlat, maxlon, maxlat), ~5k 10 km cells each
CONTINENT_BOXES = {
    "alps": (5.0, 44.0, 12.0, 50.0),
    "west_africa": (-8.0, 6.0, 0.0, 14.0),
    "andes_amazon": (-76.0, -14.0, -69.0, -7.0),
    "himalaya_india": (76.0, 24.0, 83.0, 31.0),
}


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "csmoe_cli.data_app", *args]
    print("+ csmoe-data", " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def _build(footprints: Path, out: Path, workers: int) -> None:
    _cli(
        "build-manifest",
        "--footprints",
        str(footprints),
        *DESCRIPTORS,
        "--workers",
        str(workers),
        "--out",
        str(out),
        "--overwrite",
    )


def random_land_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform random points on the sphere whose Köppen pixel is land (not ocean/nodata)."""
    rng = np.random.default_rng(seed)
    with rasterio.open(resolve_path("sample:koppen-rubel")) as src:
        kg = src.read(1)
        transform, nodata = src.transform, src.nodata
    lon_out, lat_out = [], []
    got = 0
    while got < n:
        m = 4 * n
        lon = rng.uniform(-180.0, 180.0, m)
        lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, m)))  # equal-area latitude
        r, c = rasterio.transform.rowcol(transform, lon, lat)
        r = np.clip(np.asarray(r), 0, kg.shape[0] - 1)
        c = np.clip(np.asarray(c), 0, kg.shape[1] - 1)
        v = kg[r, c].astype(np.int64)
        land = (v >= 1) & (v <= 31) & (v != (nodata if nodata is not None else -1))
        lon_out.append(lon[land])
        lat_out.append(lat[land])
        got += int(land.sum())
    return np.concatenate(lon_out)[:n], np.concatenate(lat_out)[:n]


def build_patches(out: Path, n: int = 20_000, seed: int = 11, workers: int = 2) -> Path:
    """~n 1.2 km squares at random land points worldwide."""
    lon, lat = random_land_points(n, seed)
    fp = out / "patches1k2_footprints.parquet"
    write_grid(cells_at_points(lon, lat, 1200.0), fp, overwrite=True)
    target = out / "patches1k2.parquet"
    _build(fp, target, workers)
    return target


def build_continents(out: Path, workers: int = 2) -> Path:
    """10 km cells over the four :data:`CONTINENT_BOXES`, concatenated."""
    parts = []
    for name, box in CONTINENT_BOXES.items():
        fp = out / f"cont10k_{name}.parquet"
        _cli(
            "grid",
            "--bbox",
            ",".join(map(str, box)),
            "--cell-size",
            "10000",
            "--out",
            str(fp),
            "--overwrite",
        )
        parts.append(gpd.read_parquet(fp))
    grid = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs="EPSG:4326")
    grid = grid.drop_duplicates(subset="patch_id").reset_index(drop=True)
    fp = out / "cont10k_footprints.parquet"
    write_grid(grid, fp, overwrite=True)
    target = out / "cont10k.parquet"
    _build(fp, target, workers)
    return target


def build_globe(out: Path, cell: float = 90_000.0, workers: int = 2) -> Path:
    """A whole-globe grid, ocean rows kept."""
    fp = out / "globe90k_footprints.parquet"
    _cli(
        "grid",
        "--bbox",
        "-180,-90,180,90",
        "--cell-size",
        str(cell),
        "--out",
        str(fp),
        "--overwrite",
    )
    target = out / "globe90k.parquet"
    _build(fp, target, workers)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", choices=["patches1k2", "cont10k", "globe90k"], nargs="*")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--points", type=int, default=20_000)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    todo = args.only or ["patches1k2", "cont10k", "globe90k"]
    for name in todo:
        t0 = time.perf_counter()
        if name == "patches1k2":
            path = build_patches(args.out, args.points, workers=args.workers)
        elif name == "cont10k":
            path = build_continents(args.out, args.workers)
        else:
            path = build_globe(args.out, workers=args.workers)
        print(f"{name}: {path} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
