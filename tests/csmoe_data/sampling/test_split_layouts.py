"""Spatially blocked splits on contiguous grids, clustered samples and sparse global samples.

Also the refill of split-border rows by other pool rows of their strata (``refill_borders``).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from csmoe_data.footprints.grid import make_grid
from csmoe_data.sampling import SamplingOptions, blocked_splits, sample_manifest, spatial_blocks
from csmoe_data.sampling.geo import footprint_circles, haversine
from csmoe_data.sampling.splits import SHARE_TOLERANCE, TOUCH_TOLERANCE_DEG, refill_borders

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


# --- refill of split-border rows -------------------------------------------------------


def _strata_pool(geoms: np.ndarray, seed: int = 0, rare_at: int | None = None) -> gpd.GeoDataFrame:
    """Descriptor pool over ``geoms``: 3 land-cover classes, 2 climates; ``rare_at`` gets a
    stratum of its own (climate ``BWh``, found in no other row)."""
    n = len(geoms)
    rng = np.random.default_rng(seed)
    lc = rng.dirichlet(np.full(3, 0.5), size=n).astype(np.float32)
    climate = np.where(rng.random(n) < 0.5, "Cfb", "Dfb").astype(object)
    if rare_at is not None:
        climate[rare_at] = "BWh"
    data: dict[str, object] = {"patch_id": [f"p{i:05d}" for i in range(n)]}
    for j in range(3):
        data[f"lc_{j + 1}"] = lc[:, j]
    for sym in ("Cfb", "Dfb", "BWh"):
        data[f"kg_{sym}"] = (climate == sym).astype(np.float32)
    data["lc_valid_frac"] = np.ones(n, dtype=np.float32)
    data["kg_valid_frac"] = np.ones(n, dtype=np.float32)
    data["lc_major"] = pd.array(lc.argmax(axis=1) + 1, dtype="Int32")
    data["kg_major"] = pd.array(climate.astype(str), dtype="string")
    return gpd.GeoDataFrame(pd.DataFrame(data), geometry=list(geoms), crs="EPSG:4326")


def _strata(frame: pd.DataFrame) -> set[tuple[str, int]]:
    """(climate, dominant land cover) strata held by the rows."""
    return set(zip(frame["kg_major"].astype(str), frame["lc_major"].astype(int), strict=True))


@pytest.mark.parametrize(
    ("strategy", "seed"), [("thematic-climatic", 0), ("stratified", 1), ("random", 2)]
)
def test_sample_of_a_contiguous_grid_keeps_its_size_strata_and_shares(
    strategy: str, seed: int
) -> None:
    pool = _strata_pool(lattice(10.0, 45.0, 40, 0.01), seed=seed)
    n = 300
    options = dict(n=n, seed=seed, strategy=strategy, split_block_size=4000.0)
    plain, _ = sample_manifest(pool, SamplingOptions(**options))
    out, meta = sample_manifest(pool, SamplingOptions(**options, split=SHARES))
    report = meta["split_report"]
    assert report["removed"] > 0  # the case this is about: border rows left the sample ...
    assert report["replaced"] == report["removed"]  # ... and a dense pool replaced them all
    assert sum(report["replaced_by_split"].values()) == report["replaced"]
    assert meta["selected"] == len(out) == n
    assert _strata(out) == _strata(plain)
    geoms = np.asarray(out.geometry.values, dtype=object)
    assert cross_split_touches(geoms, out["split"].to_numpy().astype(object)) == 0
    counts = out["split"].value_counts()
    for name, share in SHARES.items():
        assert report["counts"][name] == counts[name]
        assert abs(counts[name] / len(out) - share) <= SHARE_TOLERANCE
    assert out["patch_id"].is_unique
    assert list(out["patch_id"]) == sorted(out["patch_id"])  # the pool's order
    again, _ = sample_manifest(pool, SamplingOptions(**options, split=SHARES))
    pd.testing.assert_frame_equal(out, again)


def test_whole_pool_has_nothing_to_refill_from() -> None:
    pool = _strata_pool(lattice(10.0, 45.0, 30, 0.01))
    out, meta = sample_manifest(
        pool, SamplingOptions(n=None, split=SHARES, split_block_size=6000.0)
    )
    report = meta["split_report"]
    assert report["removed"] > 0 and report["replaced"] == 0
    assert len(out) == len(pool) - report["removed"]


def test_the_only_row_of_a_stratum_stays_and_its_neighbour_leaves() -> None:
    geoms = lattice(10.0, 45.0, 30, 0.01)
    plain, _ = blocked_splits(geoms, SHARES, seed=0, block_size=4000.0)
    lost = [i for i, s in enumerate(plain) if s is None]
    assert lost
    for rare in (lost[0], lost[len(lost) // 2], lost[-1]):  # rows a plain split removes
        protect = np.zeros(len(geoms), dtype=bool)
        protect[rare] = True
        split, report = blocked_splits(geoms, SHARES, seed=0, block_size=4000.0, protect=protect)
        assert split[rare] is not None
        assert cross_split_touches(geoms, split) == 0
        # the sampler protects the only row of a stratum by itself
        pool = _strata_pool(geoms, rare_at=rare)
        out, _ = sample_manifest(
            pool, SamplingOptions(n=None, split=SHARES, split_block_size=4000.0)
        )
        assert f"p{rare:05d}" in set(out["patch_id"])
        split = out["split"].to_numpy().astype(object)
        assert cross_split_touches(np.asarray(out.geometry.values), split) == 0


def test_min_distance_samples_have_no_border_rows_to_refill() -> None:
    # footprints kept apart by min_distance never touch, so the split removes none of them
    pool = _strata_pool(lattice(10.0, 45.0, 50, 0.01))
    gap = 1500.0  # metres between footprints of ~0.8 x 1.1 km
    out, meta = sample_manifest(
        pool,
        SamplingOptions(n=150, seed=3, split=SHARES, split_block_size=5000.0, min_distance=gap),
    )
    assert meta["split_report"]["removed"] == meta["split_report"]["replaced"] == 0
    assert len(out) == 150
    lon, lat, radius = footprint_circles(np.asarray(out.geometry.values, dtype=object))
    for i in range(len(out)):
        d = haversine(lon[i], lat[i], lon, lat) - radius[i] - radius
        d[i] = np.inf
        assert d.min() >= gap - 1e-6


def _row_of_cells() -> np.ndarray:
    """Cells 0-7 in a row (0.01 deg, touching), 8 far east, 9 overlapping cell 2 from the
    east, 10 inside cell 1. With 2 km blocks: {0}, {1, 2, 10}, {3, 4, 5, 9}, {6, 7}, {8}."""
    cells = [shapely.box(10 + 0.01 * i, 45, 10.01 + 0.01 * i, 45.01) for i in range(8)]
    cells += [shapely.box(11, 45, 11.01, 45.01), shapely.box(10.029, 45, 10.039, 45.01)]
    cells += [shapely.box(10.012, 45.002, 10.018, 45.008)]
    return np.array(cells, dtype=object)


def test_refill_takes_the_first_candidate_that_fits() -> None:
    geoms = _row_of_cells()
    chosen = np.array([0, 1, 2, 3])
    split, report = blocked_splits(geoms[chosen], {"a": 0.5, "b": 0.5}, seed=0, block_size=2000.0)
    # blocks {0} and {3} went to b, {1, 2} to a; b gives up its rows touching a
    assert list(report.assigned) == ["b", "a", "a", "b"]
    assert list(split) == [None, "a", "a", None]
    order = {0: [10, 9, 4], 3: [2, 4, 8]}
    added, added_split = refill_borders(
        geoms, chosen, split, report, lambda pos: np.array(order[pos])
    )
    # for row 0: 10 lies in a's block, 9 overlaps a's cell 2, 4 fits; for row 3: 2 is
    # selected, 4 is taken by now, 8 fits (its empty block joins b)
    assert added.tolist() == [4, 8]
    assert added_split.tolist() == ["b", "b"]
    assert report.replaced == 2 and report.replaced_by_split == {"b": 2}
    assert report.counts == {"a": 2, "b": 2} and report.removed == 2
    assert report.achieved == {"a": 0.5, "b": 0.5} and report.max_deviation == 0.0


def test_refill_honours_the_extra_test_and_leaves_unfilled_rows_removed() -> None:
    geoms = _row_of_cells()
    chosen = np.array([0, 1, 2, 3])
    split, report = blocked_splits(geoms[chosen], {"a": 0.5, "b": 0.5}, seed=0, block_size=2000.0)
    seen: list[tuple[int, list[int]]] = []

    def allowed(cand: int, kept: np.ndarray) -> bool:
        seen.append((cand, sorted(kept.tolist())))
        return cand != 8

    added, _ = refill_borders(
        geoms, chosen, split, report, lambda pos: np.array([4] if pos == 0 else [8]), allowed
    )
    assert added.tolist() == [4]
    assert seen == [(4, [1, 2]), (8, [1, 2, 4])]  # the kept rows include earlier replacements
    assert report.replaced == 1 and report.counts == {"a": 2, "b": 1}
