"""Tests of the Major TOM grid (csmoe_data.footprints.majortom_grid)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.majortom_grid import (
    RADIUS_EQUATOR_KM,
    cell_id,
    cell_polygon,
    cells_in_bbox,
    grid_latitudes,
    majortom_utm_epsg,
    parse_cell_id,
    row_longitudes,
)


def test_published_cell_of_a_real_product() -> None:
    # Major TOM Core-S2L2A lists cell 451U_946L for Sentinel-2 tile T12TVK (Utah), EPSG:32612
    poly = cell_polygon("451U_946L")
    lon, lat = poly.centroid.x, poly.centroid.y
    assert 40.4 < lat < 40.7 and -111.9 < lon < -111.5
    assert cell_id(lon, lat) == ["451U_946L"]
    minx, miny, _, _ = poly.bounds
    assert majortom_utm_epsg(miny, minx).tolist() == 32612


def test_row_and_column_spacing_follow_the_definition() -> None:
    lats, zero = grid_latitudes(10.0)
    n = math.ceil(math.pi * RADIUS_EQUATOR_KM / 10.0)
    assert len(lats) == n and lats[zero] == 0.0
    assert np.allclose(np.diff(lats), 180.0 / n)
    for row in (0, 300, -300, 900):
        lons = row_longitudes(row, 10.0)
        lat = lats[zero + row]
        m = math.ceil(2 * math.pi * RADIUS_EQUATOR_KM * math.cos(math.radians(lat)) / 10.0)
        assert len(lons) == m
        assert np.allclose(np.diff(lons), 360.0 / m)
        assert 0.0 in lons.tolist() and lons.min() >= -180.0 and lons.max() < 180.0
        # cells are about 10 km wide on the sphere of radius R
        width_km = math.radians(360.0 / m) * RADIUS_EQUATOR_KM * math.cos(math.radians(lat))
        assert 9.0 < width_km <= 10.0


def test_points_go_to_the_cell_below_and_left_of_them() -> None:
    rng = np.random.default_rng(0)
    lon = rng.uniform(-180, 180, 500)
    lat = rng.uniform(-80, 80, 500)
    ids = cell_id(lon, lat)
    for x, y, cid in zip(lon, lat, ids, strict=True):
        poly = cell_polygon(cid)
        minx, miny, maxx, maxy = poly.bounds
        assert miny < y <= maxy
        assert minx < x <= maxx or minx < x + 360.0 <= maxx  # last column reaches past 180
    # grid points themselves belong to the cell below/left (Major TOM's searchsorted - 1)
    assert cell_id(0.0, 0.0) == ["1D_1L"]
    assert cell_id(1e-9, 1e-9) == ["0U_0R"]


def test_ids_parse_and_reject() -> None:
    assert parse_cell_id("123U_456R") == (123, 456)
    assert parse_cell_id("7D_8L") == (-7, -8)
    for bad in ("123_456", "U1_R2", "12X_3R", ""):
        with pytest.raises(CsmoeDataError):
            parse_cell_id(bad)
    with pytest.raises(CsmoeDataError):
        cell_polygon("5000U_0R")
    with pytest.raises(CsmoeDataError):
        cell_id(0.0, 89.0)  # beyond Major TOM's -85..85 rows


def test_cells_in_bbox_tile_the_bbox_without_overlap() -> None:
    grid = cells_in_bbox("10.0,45.0,10.5,45.4")
    assert grid.crs.to_epsg() == 4326
    assert grid["patch_id"].is_unique
    union = shapely.union_all(grid.geometry.values)
    assert union.covers(shapely.box(10.0, 45.0, 10.5, 45.4))
    assert abs(union.area - shapely.area(grid.geometry.values).sum()) < 1e-9  # no overlap
    # every cell holds the ids of points inside it
    for cid, poly in zip(grid["patch_id"][:20], grid.geometry[:20], strict=True):
        c = poly.centroid
        assert cell_id(c.x, c.y) == [cid]
    assert set(grid["utm_crs"]) == {"EPSG:32632"}


def test_cells_in_bbox_across_the_antimeridian_and_sizes() -> None:
    grid = cells_in_bbox("179.9,10.0,-179.9,10.2")
    b = np.array([g.bounds for g in grid.geometry])
    assert (b[:, 0] >= -180).all() and (b[:, 2] <= 180).all()
    ids = set(grid["patch_id"])
    assert set(cell_id([179.95, -179.95], [10.1, 10.1])) <= ids
    coarse = cells_in_bbox("10,45,11,46", dist_km=50.0)
    fine = cells_in_bbox("10,45,11,46", dist_km=5.0)
    assert len(fine) > 50 * len(coarse) / 2.0
    with pytest.raises(CsmoeDataError):
        cells_in_bbox("0,0,10,10", max_cells=10)
    with pytest.raises(CsmoeDataError):
        cells_in_bbox("0,0,1,1", dist_km=0)
