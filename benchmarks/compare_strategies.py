"""Compare every sampling strategy on real global descriptor pools, side by side.

Pools are built from the embedded real maps (MODIS MCD12C1 IGBP 2019 at 0.05 deg, Köppen-Geiger
Rubel 2017 at 5 arc-min): a global grid of square lon/lat cells (``--cell`` degrees, shifted by
``--offset`` degrees), land only (Köppen valid fraction >= 0.5), with per-cell class fractions
counted exactly from the pixels inside each cell (block sums: every cell edge falls on a pixel
edge of both rasters because cell sizes and offsets are multiples of 0.25 deg). ``--engine``
builds the pool with the project's own descriptor engine (``csmoe-data grid`` +
``build-manifest``) instead, when those are installed.

Figures per strategy and budget (see ``csmoe_data.stats``): strata coverage, k-center mean and
max radius (also as a ratio to ``random`` with the same n and seed), land-cover and climate JS
divergence, normalised strata entropy, and the sampling time.

Usage::

    python benchmarks/compare_strategies.py                     # 1 deg global, n = 1%, 2%, 5%
    python benchmarks/compare_strategies.py --cell 0.75 --offset 0.25 --seeds 0 1 2

Pools built with the CLI (1.2 km patches at random land points, 10 km cells over four
continents, a whole-globe grid with ocean rows) come from ``benchmarks/build_real_pools.py``::

    python benchmarks/build_real_pools.py --out /tmp/pools
    python benchmarks/compare_strategies.py --pool /tmp/pools/patches1k2.parquet \
        --strategies random thematic-climatic --seeds 0 7
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely

from csmoe_data.samples import resolve_path
from csmoe_data.sampling import STRATEGIES, SamplingOptions, sample_manifest
from csmoe_data.stats import compute_stats, eligible_pool

LC_CODES = list(range(17))  # IGBP 0 (water) .. 16 (barren); 255 = fill
KG_LEGEND = json.loads(
    (resolve_path("sample:koppen-rubel").parent / "legend_rubel2017.json").read_text()
)
KG_CODES = [int(k) for k in KG_LEGEND if int(k) <= 31]  # 32 = ocean (nodata)


def _cell_counts(
    codes: np.ndarray,
    classes: list[int],
    starts: np.ndarray,
    per_band: np.ndarray,
    band_height: float,
    offset: float,
    rows_per_chunk: int = 400,
) -> np.ndarray:
    """Class pixel counts per cell (pixel-centre inclusion), shape (cells, classes)."""
    h, w = codes.shape
    res_y, res_x = 180.0 / h, 360.0 / w
    lut = np.full(256, -1, dtype=np.int64)
    lut[np.asarray(classes)] = np.arange(len(classes))
    n_cells = int(starts[-1] + per_band[-1])
    out = np.zeros(n_cells * len(classes), dtype=np.int64)
    lon = -180.0 + (np.arange(w) + 0.5) * res_x
    lon_frac = np.mod(lon + 180.0 - offset, 360.0) / 360.0
    for r0 in range(0, h, rows_per_chunk):
        lat = 90.0 - (np.arange(r0, min(h, r0 + rows_per_chunk)) + 0.5) * res_y
        band = np.clip(
            np.floor((90.0 - lat + offset) / band_height).astype(np.int64), 0, len(per_band) - 1
        )
        col = np.floor(lon_frac[None, :] * per_band[band][:, None]).astype(np.int64)
        col = np.minimum(col, per_band[band][:, None] - 1)
        cell = starts[band][:, None] + col
        k = lut[codes[r0 : r0 + len(lat)]]
        ok = k >= 0
        out += np.bincount((cell[ok] * len(classes) + k[ok]), minlength=len(out))
    return out.reshape(n_cells, len(classes))


def real_pool(
    cell: float = 0.85,
    offset: float = 0.0,
    lat_range: tuple[float, float] = (-90.0, 90.0),
    lon_range: tuple[float, float] = (-180.0, 180.0),
) -> gpd.GeoDataFrame:
    """Descriptor pool of the land cells of a near-equal-area global grid, from the real maps.

    Cells: latitude bands ``cell`` degrees high (shifted south by ``offset``), each cut into
    ``round(360 cos(lat) / cell)`` equal longitude steps (shifted east by ``offset``), so cells
    are about ``cell`` x ``cell`` degrees of great circle everywhere (0.85 deg ~ 95 km). Pixels
    count for the cell holding their centre. Land = Köppen valid fraction >= 0.5.

    Args:
        cell: band height in degrees.
        offset: grid shift in degrees.
        lat_range, lon_range: keep cells whose centre lies inside.
    """
    n_bands = int(np.ceil((180.0 + offset) / cell))
    south = 90.0 + offset - (np.arange(n_bands) + 1) * cell
    north = south + cell
    mid = np.clip((np.maximum(south, -90.0) + np.minimum(north, 90.0)) / 2.0, -89.99, 89.99)
    per_band = np.maximum(1, np.round(360.0 * np.cos(np.radians(mid)) / cell)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(per_band)[:-1]])
    with rasterio.open(resolve_path("sample:modis-igbp")) as ds:
        lc_counts = _cell_counts(ds.read(1), LC_CODES, starts, per_band, cell, offset)
        lc_all = _cell_counts(ds.read(1), list(range(256)), starts, per_band, cell, offset).sum(
            axis=1
        )
    with rasterio.open(resolve_path("sample:koppen-rubel")) as ds:
        kg_codes = ds.read(1)
        kg_counts = _cell_counts(kg_codes, KG_CODES, starts, per_band, cell, offset)
        kg_all = _cell_counts(kg_codes, list(range(256)), starts, per_band, cell, offset).sum(
            axis=1
        )
    band = np.repeat(np.arange(n_bands), per_band)
    col = np.arange(len(band)) - starts[band]
    width = 360.0 / per_band[band]
    west = -180.0 + offset + col * width
    west = np.mod(west + 180.0, 360.0) - 180.0
    s_lat, n_lat = np.maximum(south[band], -90.0), np.minimum(north[band], 90.0)
    lon_c, lat_c = np.mod(west + width / 2 + 180.0, 360.0) - 180.0, (s_lat + n_lat) / 2
    kg_valid = kg_counts.sum(axis=1)
    lc_valid = lc_counts.sum(axis=1)
    keep = (kg_all > 0) & (kg_valid >= 0.5 * np.maximum(kg_all, 1))
    keep &= (
        (lat_c >= lat_range[0])
        & (lat_c <= lat_range[1])
        & (lon_c >= lon_range[0])
        & (lon_c <= lon_range[1])
    )
    idx = np.flatnonzero(keep)
    with np.errstate(invalid="ignore", divide="ignore"):
        lc_frac = lc_counts[idx] / lc_valid[idx][:, None]
        kg_frac = kg_counts[idx] / kg_valid[idx][:, None]
    data: dict[str, object] = {"patch_id": [f"b{band[i]:03d}c{col[i]:04d}" for i in idx]}
    for k, c in enumerate(LC_CODES):
        data[f"lc_{c}"] = lc_frac[:, k].astype(np.float32)
    data["lc_valid_frac"] = (lc_valid[idx] / np.maximum(lc_all[idx], 1)).astype(np.float32)
    lc_major = np.asarray(LC_CODES)[np.argmax(np.nan_to_num(lc_frac, nan=-1.0), axis=1)]
    data["lc_major"] = pd.array(np.where(lc_valid[idx] > 0, lc_major, -1), dtype="Int32")
    for k, c in enumerate(KG_CODES):
        data[f"kg_{KG_LEGEND[str(c)]}"] = kg_frac[:, k].astype(np.float32)
    data["kg_valid_frac"] = (kg_valid[idx] / np.maximum(kg_all[idx], 1)).astype(np.float32)
    data["kg_major"] = pd.array(
        [KG_LEGEND[str(KG_CODES[i])] for i in np.argmax(kg_frac, axis=1)], dtype="string"
    )
    df = pd.DataFrame(data)
    df.loc[df["lc_major"] == -1, "lc_major"] = pd.NA
    df["crs"] = "EPSG:4326"
    w = west[idx]
    geoms = shapely.box(w, s_lat[idx], w + width[idx], n_lat[idx])
    return gpd.GeoDataFrame(df, geometry=geoms, crs="EPSG:4326")


def evaluate(
    pool: gpd.GeoDataFrame,
    strategies: list[str],
    budgets: list[int],
    seeds: list[int],
    alpha: float = 0.5,
) -> pd.DataFrame:
    """Sample ``pool`` with every strategy, budget and seed; return one row of figures each."""
    records = []
    for n in budgets:
        for seed in seeds:
            base = None
            for name in ["random", *[s for s in strategies if s != "random"]]:
                t0 = time.perf_counter()
                sample, meta = sample_manifest(
                    pool, SamplingOptions(n=n, strategy=name, seed=seed, alpha=alpha)
                )
                dt = time.perf_counter() - t0
                # judged against the rows the sampler may choose (as `csmoe-data stats` does)
                st = compute_stats(sample, eligible_pool(pool, meta))
                rec = {
                    "n": n,
                    "seed": seed,
                    "strategy": name,
                    "coverage": st["strata_coverage"],
                    "mean_r": st["kcenter_mean_radius"],
                    "max_r": st["kcenter_max_radius"],
                    "lc_js": st["landcover_js_divergence"],
                    "kg_js": st["climate_js_divergence"],
                    "entropy": st["normalized_entropy"],
                    "seconds": dt,
                }
                if name == "random":
                    base = rec
                rec["mean_ratio"] = rec["mean_r"] / base["mean_r"]
                rec["max_ratio"] = rec["max_r"] / base["max_r"]
                records.append(rec)
    return pd.DataFrame.from_records(records)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", type=float, default=0.85, help="cell size, degrees (0.85 ~ 95 km)")
    ap.add_argument("--offset", type=float, default=0.0, help="grid shift, degrees")
    ap.add_argument(
        "--lat", type=float, nargs=2, default=(-90.0, 90.0), help="latitude range of cell centres"
    )
    ap.add_argument(
        "--lon",
        type=float,
        nargs=2,
        default=(-180.0, 180.0),
        help="longitude range of cell centres",
    )
    ap.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[0.01, 0.02, 0.05],
        help="budgets as shares of the pool",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--alpha", type=float, default=0.5, help="stratum budget exponent")
    ap.add_argument("--strategies", nargs="+", default=STRATEGIES.names())
    ap.add_argument("--pool", type=Path, help="use this pool manifest instead of building one")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    if args.pool:
        from csmoe_data.manifest import read_manifest

        pool, _ = read_manifest(args.pool)
        label = str(args.pool)
    else:
        pool = real_pool(args.cell, args.offset, tuple(args.lat), tuple(args.lon))
        label = f"{args.cell:g} deg cells, offset {args.offset:g}, lat {args.lat}, lon {args.lon}"
    eligible = eligible_pool(pool, {"options": SamplingOptions().to_metadata()})
    strata = eligible[["kg_major", "lc_major"]].astype(str).drop_duplicates()
    print(
        f"pool: {label}: {len(pool)} rows, {len(eligible)} eligible (valid fraction >= 0.5), "
        f"{len(strata)} strata (built in {time.perf_counter() - t0:.1f} s)"
    )
    budgets = [max(1, round(f * len(eligible))) for f in args.fractions]
    table = evaluate(pool, args.strategies, budgets, args.seeds, args.alpha)
    agg = table.groupby(["n", "strategy"], sort=False).mean(numeric_only=True).drop(columns="seed")
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format
    ):
        print(agg.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
