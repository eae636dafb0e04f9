"""Time ``sample_manifest`` on a generated pool of 1,000,000 rows, for every strategy.

The pool mimics a real descriptor manifest: 17 IGBP land-cover and 30 Köppen fraction columns
(float32), a dominant class drawn from skewed (Zipf-like) frequencies so that strata sizes
span four orders of magnitude (a few hundred strata), fractions mixing the dominant class with
1-3 others, and 1 km square footprints scattered over the land-ish latitudes (EPSG:4326).
Each strategy samples 2% of the pool (the budget of the quality goal); ``thematic-climatic``
is also timed with ``split`` and with ``min_distance``. Only the call is timed (the pool is in
memory, as after ``read_manifest``).

Usage::

    python benchmarks/bench_sampling.py            # 1,000,000 rows, n = 20,000
    python benchmarks/bench_sampling.py --rows 200000 --n 4000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from csmoe_data.sampling import STRATEGIES, SamplingOptions, sample_manifest

LC_CODES = list(range(17))
KG_SYMBOLS = [
    "Af", "Am", "Aw", "BWh", "BWk", "BSh", "BSk", "Csa", "Csb", "Csc", "Cwa", "Cwb", "Cwc", "Cfa",
    "Cfb", "Cfc", "Dsa", "Dsb", "Dsc", "Dsd", "Dwa", "Dwb", "Dwc", "Dwd", "Dfa", "Dfb", "Dfc",
    "Dfd", "ET", "EF",
]  # fmt: skip


def _mix(rng: np.random.Generator, rows: int, classes: int, major: np.ndarray) -> np.ndarray:
    """Fractions: the major class plus 0-3 random others, Dirichlet weights, major largest."""
    frac = np.zeros((rows, classes), dtype=np.float32)
    others = rng.integers(0, classes, size=(rows, 3))
    k = rng.integers(0, 4, size=rows)  # how many other classes mix in
    w = rng.dirichlet(np.ones(4) * 0.7, size=rows).astype(np.float32)
    w[:, 0] = np.maximum(w[:, 0], w[:, 1:].max(axis=1) + 0.05)
    mask = np.arange(3)[None, :] < k[:, None]
    w[:, 1:] *= mask
    w /= w.sum(axis=1, keepdims=True)
    r = np.arange(rows)
    frac[r, major] += w[:, 0]
    for j in range(3):
        np.add.at(frac, (r, others[:, j]), w[:, j + 1])
    return frac / frac.sum(axis=1, keepdims=True)


def generated_pool(rows: int, seed: int = 0) -> gpd.GeoDataFrame:
    """A descriptor pool of ``rows`` rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    lc_p = 1.0 / np.arange(1, len(LC_CODES) + 1) ** 1.2
    kg_p = 1.0 / np.arange(1, len(KG_SYMBOLS) + 1) ** 1.1
    lc_major = rng.choice(len(LC_CODES), size=rows, p=lc_p / lc_p.sum())
    kg_major = rng.choice(len(KG_SYMBOLS), size=rows, p=kg_p / kg_p.sum())
    lc = _mix(rng, rows, len(LC_CODES), lc_major)
    kg = _mix(rng, rows, len(KG_SYMBOLS), kg_major)
    data: dict[str, object] = {
        "patch_id": pd.array([f"p{i:07d}" for i in range(rows)], dtype="string")
    }
    for j, c in enumerate(LC_CODES):
        data[f"lc_{c}"] = lc[:, j]
    data["lc_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["lc_major"] = pd.array(np.asarray(LC_CODES)[lc.argmax(axis=1)], dtype="Int32")
    for j, s in enumerate(KG_SYMBOLS):
        data[f"kg_{s}"] = kg[:, j]
    data["kg_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["kg_major"] = pd.array(np.asarray(KG_SYMBOLS)[kg.argmax(axis=1)], dtype="string")
    lon = rng.uniform(-180, 179.99, rows)
    lat = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-56)), np.sin(np.radians(75)), rows)))
    dlat = 1000.0 / 111_195.0
    dlon = dlat / np.cos(np.radians(lat))
    geoms = shapely.box(lon, lat, lon + dlon, lat + dlat)
    data["crs"] = "EPSG:4326"
    return gpd.GeoDataFrame(pd.DataFrame(data), geometry=geoms, crs="EPSG:4326")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, default=None, help="budget (default 2%% of rows)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.n or round(0.02 * args.rows)

    t0 = time.perf_counter()
    pool = generated_pool(args.rows, args.seed)
    strata = pool[["kg_major", "lc_major"]].astype(str).drop_duplicates()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; pool: {len(pool):,} rows, "
        f"{len(strata)} strata, generated in {time.perf_counter() - t0:.1f} s; n = {n:,}"
    )
    runs = [
        (name, SamplingOptions(n=n, strategy=name, seed=args.seed)) for name in STRATEGIES.names()
    ]
    runs.append(
        (
            "thematic-climatic + split",
            SamplingOptions(n=n, seed=args.seed, split={"train": 0.8, "val": 0.1, "test": 0.1}),
        )
    )
    runs.append(
        (
            "thematic-climatic + min_distance 5 km",
            SamplingOptions(n=n, seed=args.seed, min_distance=5000.0),
        )
    )
    print(f"{'strategy':40s} {'seconds':>8s} {'rows':>8s} {'strata hit':>10s}")
    for label, opts in runs:
        t = time.perf_counter()
        out, meta = sample_manifest(pool, opts)
        dt = time.perf_counter() - t
        print(f"{label:40s} {dt:8.1f} {len(out):8d} {meta['groups_selected']:10d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
