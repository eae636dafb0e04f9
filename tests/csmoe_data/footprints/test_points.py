"""Tests of points -> square UTM footprints (csmoe_data.footprints.points)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.points import is_point_geometry, points_to_footprints


def test_squares_are_centred_in_the_local_utm_zone() -> None:
    pts = gpd.GeoDataFrame(
        {"name": ["berlin", "sydney", "fiji"]},
        geometry=gpd.points_from_xy([13.4, 151.2, 179.99], [52.5, -33.9, -17.0]),
        crs="EPSG:4326",
    )
    fp = points_to_footprints(pts, 2640.0)
    assert fp["crs"].tolist() == ["EPSG:32633", "EPSG:32756", "EPSG:32760"]
    assert fp["name"].tolist() == ["berlin", "sydney", "fiji"]
    for geom, crs, lon, lat in zip(
        fp["geometry"], fp["crs"], pts.geometry.x, pts.geometry.y, strict=True
    ):
        minx, miny, maxx, maxy = geom.bounds
        assert maxx - minx == pytest.approx(2640.0) and maxy - miny == pytest.approx(2640.0)
        back = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
        cx, cy = back.transform((minx + maxx) / 2, (miny + maxy) / 2)
        assert cx == pytest.approx(lon, abs=1e-9) and cy == pytest.approx(lat, abs=1e-9)


def test_points_in_a_projected_crs_and_bad_input() -> None:
    t = pyproj.Transformer.from_crs(4326, 3035, always_xy=True)
    x, y = t.transform(13.4, 52.5)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy([x], [y]), crs="EPSG:3035")
    fp = points_to_footprints(pts, 1000.0)
    assert fp["point_lon"].iloc[0] == pytest.approx(13.4) and fp["crs"].iloc[0] == "EPSG:32633"
    with pytest.raises(CsmoeDataError):
        points_to_footprints(pts, -5)
    no_crs = gpd.GeoDataFrame(geometry=gpd.points_from_xy([1.0], [2.0]))
    with pytest.raises(CsmoeDataError):
        points_to_footprints(no_crs, 100)
    assert points_to_footprints(no_crs, 100, crs="EPSG:4326")["crs"].iloc[0] == "EPSG:32631"
    polys = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4326")
    with pytest.raises(CsmoeDataError):
        points_to_footprints(polys, 100)
    polar = gpd.GeoDataFrame(geometry=gpd.points_from_xy([0.0], [88.0]), crs="EPSG:4326")
    with pytest.raises(CsmoeDataError):
        points_to_footprints(polar, 100)
    assert is_point_geometry(pts.geometry) and not is_point_geometry(polys.geometry)
    assert not is_point_geometry(np.array([None], dtype=object))
