"""Sampling in space: min_distance, spatially blocked splits, geodesic helpers."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from csmoe_data.sampling import SamplingOptions, assign_splits, sample_manifest
from csmoe_data.sampling.geo import FootprintIndex, footprint_circles, haversine

LC = [1, 2, 3]
KG = ["Cfb", "Dfb"]


def make_pool(
    side: int = 20, cell: float = 0.01, seed: int = 0, gap: float = 0.0
) -> gpd.GeoDataFrame:
    """side x side square cells (touching when gap == 0) near 45 N, 10 E."""
    rng = np.random.default_rng(seed)
    rows = side * side
    lc = rng.dirichlet(np.ones(len(LC)), size=rows)
    kg = rng.dirichlet(np.ones(len(KG)), size=rows)
    data: dict[str, object] = {"patch_id": [f"t{i:04d}" for i in range(rows)]}
    for j, c in enumerate(LC):
        data[f"lc_{c}"] = lc[:, j].astype(np.float32)
    data["lc_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["lc_major"] = pd.array(np.asarray(LC)[lc.argmax(axis=1)], dtype="Int32")
    for j, s in enumerate(KG):
        data[f"kg_{s}"] = kg[:, j].astype(np.float32)
    data["kg_valid_frac"] = np.ones(rows, dtype=np.float32)
    data["kg_major"] = pd.array(np.asarray(KG)[kg.argmax(axis=1)], dtype="string")
    data["crs"] = "EPSG:32632"
    step = cell + gap
    x = 10.0 + (np.arange(rows) % side) * step
    y = 45.0 + (np.arange(rows) // side) * step
    return gpd.GeoDataFrame(
        pd.DataFrame(data), geometry=shapely.box(x, y, x + cell, y + cell), crs="EPSG:4326"
    )


def exact_gap_m(a: shapely.Geometry, b: shapely.Geometry) -> float:
    """Distance between two small lon/lat polygons in metres, by a local equirectangular frame."""
    lat0 = np.radians((a.centroid.y + b.centroid.y) / 2)

    def proj(g: shapely.Geometry) -> shapely.Geometry:
        return shapely.transform(
            g, lambda c: np.column_stack([c[:, 0] * np.cos(lat0), c[:, 1]]) * 111_195.0
        )

    return float(proj(a).distance(proj(b)))


def test_haversine_known_distance() -> None:
    # one degree of latitude on the mean sphere
    assert haversine(0.0, 0.0, 0.0, 1.0) == pytest.approx(111_195.08, rel=1e-6)
    assert haversine(179.9, 0.0, -179.9, 0.0) == pytest.approx(2 * 11_119.5, rel=1e-3)


def test_footprint_circles_cover_the_footprint() -> None:
    g = shapely.box(10.0, 45.0, 10.01, 45.01)
    lon, lat, r = footprint_circles(np.array([g]))
    assert lon[0] == pytest.approx(10.005) and lat[0] == pytest.approx(45.005)
    corner = haversine(lon[0], lat[0], 10.0, 45.0)
    assert r[0] >= corner
    # a footprint split at the antimeridian stays small
    split = shapely.MultiPolygon(
        [shapely.box(179.995, 0, 180, 0.01), shapely.box(-180, 0, -179.995, 0.01)]
    )
    lon, _, r = footprint_circles(np.array([split]))
    assert abs(abs(lon[0]) - 180.0) < 1e-6 and r[0] < 2_000


@pytest.mark.parametrize("strategy", ["thematic-climatic", "stratified", "random", "cluster"])
def test_min_distance_holds(strategy: str) -> None:
    pool = make_pool(side=30)  # 900 touching ~0.8 x 1.1 km cells
    d = 1_500.0
    out, meta = sample_manifest(
        pool, SamplingOptions(n=40, strategy=strategy, min_distance=d, seed=1)
    )
    assert 0 < len(out) <= 40
    geoms = list(out.geometry)
    for a, b in itertools.combinations(geoms, 2):
        assert exact_gap_m(a, b) >= d
    # min_distance is a constraint, not a licence to drop rows needlessly: a 30 x 30 lattice of
    # ~1 km cells holds far more than 40 cells 1.5 km apart
    assert len(out) == 40 and meta["selected"] == 40


def test_min_distance_thins_when_the_pool_is_too_dense() -> None:
    pool = make_pool(side=10)
    out, _ = sample_manifest(pool, SamplingOptions(n=100, min_distance=5_000.0))
    assert 0 < len(out) < 100
    for a, b in itertools.combinations(list(out.geometry), 2):
        assert exact_gap_m(a, b) >= 5_000.0


def test_footprint_index_thin_is_greedy_in_order() -> None:
    lon = np.array([0.0, 0.001, 0.1, 0.1005])
    lat = np.zeros(4)
    idx = FootprintIndex(lon, lat, np.zeros(4), min_distance=1_000.0)
    kept = idx.thin(np.array([1, 0, 2, 3]), np.empty(0, dtype=np.int64))
    assert kept.tolist() == [1, 2]
    assert idx.thin(np.array([3]), np.array([2])).tolist() == []


def test_assign_splits_fractions_and_determinism() -> None:
    blocks = np.arange(1000) % 250  # 250 blocks of 4 rows
    s1 = assign_splits(blocks, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    s2 = assign_splits(blocks, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    s3 = assign_splits(blocks, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=1)
    assert (s1 == s2).all() and not (s1 == s3).all()
    counts = pd.Series(s1).value_counts()
    assert counts["train"] == 800 and counts["val"] == 100 and counts["test"] == 100
    for b in range(250):  # a block never straddles splits
        assert len(set(s1[blocks == b])) == 1
    zero = assign_splits(blocks, {"train": 1.0, "val": 0.0}, seed=0)
    assert set(zero) == {"train"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_blocking_no_cross_split_overlap_or_touch(seed: int) -> None:
    # touching lattice in two far-apart clusters plus scattered cells
    near = make_pool(side=12, cell=0.01, seed=seed)
    far = make_pool(side=12, cell=0.01, seed=seed + 10, gap=0.5)  # cells 0.5 deg apart
    far["patch_id"] = "f" + far["patch_id"]
    pool = pd.concat([near, far], ignore_index=True)
    out, meta = sample_manifest(
        pool, SamplingOptions(n=None, split={"train": 0.6, "val": 0.2, "test": 0.2}, seed=seed)
    )
    assert set(out["split"]) == {"train", "val", "test"}
    assert sum(meta["split_counts"].values()) == len(out)
    tree = shapely.STRtree(np.asarray(out.geometry.values))
    left, right = tree.query(np.asarray(out.geometry.values), predicate="intersects")
    split = out["split"].to_numpy()
    assert (split[left] == split[right]).all()
    # rows touching another split were removed and counted
    assert meta["selected"] == len(out) == len(pool) - meta["split_report"]["removed"]
    frac = out["split"].value_counts(normalize=True)
    assert frac["train"] > 0.4


def test_split_with_sampled_rows_and_touching_after_reprojection_noise() -> None:
    pool = make_pool(side=10, cell=0.01)
    # move every other cell by 1e-9 deg: still touching for the split (tolerance), but
    # exact predicates would see gaps
    geoms = np.asarray(pool.geometry.values)
    geoms[::2] = shapely.transform(geoms[::2], lambda c: c + 1e-9)
    pool = pool.set_geometry(gpd.GeoSeries(geoms, crs="EPSG:4326"))
    out, meta = sample_manifest(
        pool, SamplingOptions(n=None, split={"train": 0.5, "test": 0.5}, split_block_size=3000.0)
    )
    assert out["split"].nunique() == 2
    geoms = np.asarray(out.geometry.values)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=1e-7)
    split = out["split"].to_numpy()
    assert (split[left] == split[right]).all()  # touching within the tolerance counts
    assert meta["split_report"]["removed"] > 0
