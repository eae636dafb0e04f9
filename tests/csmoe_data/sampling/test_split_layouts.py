"""Spatially blocked splits on contiguous grids, clustered samples and sparse global samples."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from csmoe_data.footprints.grid import make_grid
from csmoe_data.sampling import SamplingOptions, blocked_splits, sample_manifest, spatial_blocks
from csmoe_data.sampling.splits import SHARE_TOLERANCE, TOUCH_TOLERANCE_DEG

SHARES = {"train": 0.8, "val": 0.1, "test": 0.1}


def lattice(x0: float, y0: float, side: int, cell: float) -> np.ndarray:
    """side x side touching lon/lat squares with lower-left corner (x0, y0)."""
    i = np.arange(side * side)
    x = x0 + (i % side) * cell
    y = y0 + (i // side) * cell
    return shapely.box(x, y, x + cell, y + cell)


def cross_split_touches(geoms: np.ndarray, split: np.ndarray) -> int:
    """Pairs of kept footprints in different splits that overlap or touch."""
    keep = np.array([s is not None for s in split])
    g, s = geoms[keep], split[keep].astype(str)
    tree = shapely.STRtree(g)
    left, right = tree.query(g, predicate="dwithin", distance=TOUCH_TOLERANCE_DEG)
    return int((s[left] != s[right]).sum())


def check(geoms: np.ndarray, split: np.ndarray, report, shares=SHARES) -> None:  # noqa: ANN001
    kept = np.array([s is not None for s in split])
    assert report.removed == int((~kept).sum())
    assert sum(report.counts.values()) == int(kept.sum())
    counts = pd.Series(split[kept].astype(str)).value_counts()
    for name, share in shares.items():
        assert report.counts[name] == int(counts.get(name, 0))
        assert abs(counts.get(name, 0) / kept.sum() - share) <= SHARE_TOLERANCE, (name, counts)
    assert cross_split_touches(geoms, split) == 0
    assert report.max_deviation <= SHARE_TOLERANCE
    assert report.warnings == []


def test_contiguous_grid_output_meets_shares_without_touching() -> None:
    # csmoe-data grid output: 2 km UTM cells over ~2.5 x 2 degrees, every cell touches its neighbours
    grid = make_grid((10.0, 45.0, 12.5, 47.0), 2000.0)
    geoms = np.asarray(grid.geometry.values, dtype=object)
    assert len(geoms) > 10_000
    split, report = blocked_splits(geoms, SHARES, seed=0)
    assert report.blocks >= 50
    check(geoms, split, report)
    # border rows are lost, but only a few percent of a contiguous grid
    assert 0 < report.removed < 0.15 * len(geoms)
    assert report.removed == sum(report.removed_by_split.values())


def test_contiguous_lattice_with_given_block_size() -> None:
    geoms = lattice(0.0, 40.0, 120, 0.01)  # ~1 km cells, 14,400 rows
    split, report = blocked_splits(geoms, SHARES, seed=3, block_size=12_000.0)
    assert report.block_size_from == "option" and report.block_size_m == 12_000.0
    check(geoms, split, report)


@pytest.mark.parametrize("seed", [0, 1])
def test_clustered_sample(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = []
    for lon, lat in zip(rng.uniform(-120, 140, 12), rng.uniform(-40, 60, 12), strict=True):
        parts.append(lattice(lon, lat, 15, 0.02))  # 12 clusters of 225 touching cells
    geoms = np.concatenate(parts)
    split, report = blocked_splits(geoms, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=seed)
    check(geoms, split, report, {"train": 0.7, "val": 0.15, "test": 0.15})


def test_sparse_global_sample() -> None:
    rng = np.random.default_rng(5)
    lon = rng.uniform(-180, 179, 600)
    lat = rng.uniform(-60, 75, 600)
    geoms = shapely.box(lon, lat, lon + 1.0, lat + 1.0)  # ~110 km tiles, rarely touching
    split, report = blocked_splits(geoms, SHARES, seed=0)
    check(geoms, split, report)
    assert report.blocks >= 50


def test_deterministic_and_seeded() -> None:
    geoms = lattice(5.0, 50.0, 60, 0.01)
    a, ra = blocked_splits(geoms, SHARES, seed=0, block_size=5000.0)
    b, rb = blocked_splits(geoms, SHARES, seed=0, block_size=5000.0)
    c, _ = blocked_splits(geoms, SHARES, seed=1, block_size=5000.0)
    assert (a == b).all() and ra.to_metadata() == rb.to_metadata()
    assert not (a == c).all()


def test_unmeetable_request_is_a_warning_with_the_reason() -> None:
    # three far-apart clusters, one block each: 80/10/10 cannot be met
    geoms = np.concatenate(
        [lattice(0, 0, 10, 0.01), lattice(50, 0, 4, 0.01), lattice(90, 0, 3, 0.01)]
    )
    split, report = blocked_splits(geoms, SHARES, seed=0, block_size=50_000.0)
    assert report.blocks == 3
    assert report.max_deviation > SHARE_TOLERANCE
    assert any("only 3 spatial blocks" in w for w in report.warnings)
    assert cross_split_touches(geoms, split) == 0


def test_one_dominant_block_is_named_as_the_reason() -> None:
    big = lattice(0, 0, 40, 0.01)  # 1,600 rows in one 100 km block
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-170, 170, 300), rng.uniform(-50, 60, 300)
    small = shapely.box(lon, lat, lon + 0.01, lat + 0.01)
    geoms = np.concatenate([big, small])
    _, report = blocked_splits(geoms, {"train": 0.5, "test": 0.5}, seed=0, block_size=100_000.0)
    assert any("largest block holds" in w for w in report.warnings)


def test_missing_geometry_and_bad_arguments() -> None:
    geoms = np.concatenate([lattice(0, 0, 30, 0.01), np.array([None, None], dtype=object)])
    split, report = blocked_splits(geoms, SHARES, seed=0, block_size=3000.0)
    assert sum(report.counts.values()) + report.removed == len(geoms)
    with pytest.raises(ValueError, match="sum to 1"):
        blocked_splits(geoms, {"train": 0.5}, seed=0)
    with pytest.raises(ValueError, match="block size"):
        blocked_splits(geoms, SHARES, block_size=0.0)


def test_spatial_blocks_are_grid_cells() -> None:
    a = shapely.box(0.10, 0.10, 0.11, 0.11)
    b = shapely.box(0.20, 0.20, 0.21, 0.21)  # same 100 km cell, not touching
    c = shapely.box(3.0, 3.0, 3.01, 3.01)
    blocks = spatial_blocks(np.array([a, b, c]), block_size=100_000.0)
    assert blocks[0] == blocks[1] != blocks[2]


def _pool(geoms: np.ndarray) -> gpd.GeoDataFrame:
    n = len(geoms)
    rng = np.random.default_rng(0)
    lc = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    data = {"patch_id": [f"p{i:05d}" for i in range(n)], "crs": "EPSG:4326"}
    for j in range(3):
        data[f"lc_{j + 1}"] = lc[:, j]
    data["lc_valid_frac"] = np.ones(n, dtype=np.float32)
    data["lc_major"] = pd.array(lc.argmax(axis=1) + 1, dtype="Int32")
    return gpd.GeoDataFrame(pd.DataFrame(data), geometry=list(geoms), crs="EPSG:4326")


def test_sample_manifest_reports_shares_and_removed_rows() -> None:
    pool = _pool(lattice(10.0, 45.0, 100, 0.01))
    out, meta = sample_manifest(
        pool, SamplingOptions(n=None, split=SHARES, split_block_size=8000.0)
    )
    report = meta["split_report"]
    assert report["removed"] > 0
    assert meta["selected"] == len(out) == len(pool) - report["removed"]
    assert meta["split_counts"] == {k: v for k, v in report["counts"].items()}
    assert meta["split_block_m"] == 8000.0
    for k, share in SHARES.items():
        assert abs(report["achieved"][k] - share) <= SHARE_TOLERANCE
    split = out["split"].to_numpy().astype(object)
    assert cross_split_touches(np.asarray(out.geometry.values), split) == 0
    # a 500-row sample of the grid: shares still met
    out2, meta2 = sample_manifest(pool, SamplingOptions(n=500, split=SHARES, seed=1))
    frac = out2["split"].value_counts(normalize=True)
    for k, share in SHARES.items():
        assert abs(frac[k] - share) <= SHARE_TOLERANCE
