"""Tests of csmoe_data.geometry: reprojection, densification, antimeridian, repair, centroids."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import shapely

from csmoe_data.errors import CsmoeDataError
from csmoe_data.geometry import (
    centroid_lonlat,
    crs_string,
    repair_geometries,
    split_antimeridian,
    transform_geometries,
    transform_geometries_by_crs,
    unwrap_longitudes,
)


def _utm_square_at(lon: float, lat: float, epsg: int, half: float) -> shapely.Polygon:
    x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    return shapely.box(x - half, y - half, x + half, y + half)


def _parts(geom: shapely.Geometry) -> list[shapely.Geometry]:
    return list(shapely.get_parts(geom))


def test_utm_square_corners_match_pyproj() -> None:
    sq = shapely.box(404400, 5341200, 405600, 5342400)
    out = transform_geometries([sq], "EPSG:32633", "EPSG:4326")
    assert out.dtype == object and len(out) == 1
    geom = out[0]
    assert geom.geom_type == "Polygon" and geom.is_valid
    t = pyproj.Transformer.from_crs(32633, 4326, always_xy=True)
    coords = shapely.get_coordinates(geom)
    for cx, cy in [(404400, 5341200), (405600, 5341200), (405600, 5342400), (404400, 5342400)]:
        lon, lat = t.transform(cx, cy)
        assert np.min(np.hypot(coords[:, 0] - lon, coords[:, 1] - lat)) < 1e-9


def test_edges_are_densified() -> None:
    sq = shapely.box(400000, 5000000, 500000, 5100000)
    dense = transform_geometries([sq], 32633, 4326, densify_pts=21)[0]
    plain = transform_geometries([sq], 32633, 4326, densify_pts=0)[0]
    # 4 edges x 22 segments + closing vertex
    assert shapely.get_num_coordinates(dense) == 4 * 22 + 1
    assert shapely.get_num_coordinates(plain) == 5
    # every densified vertex is the true image of a point on the UTM edge
    t = pyproj.Transformer.from_crs(4326, 32633, always_xy=True)
    x, y = t.transform(*shapely.get_coordinates(dense).T)
    on_edge = np.isclose(x, 400000, atol=1e-3) | np.isclose(x, 500000, atol=1e-3)
    on_edge |= np.isclose(y, 5000000, atol=1e-3) | np.isclose(y, 5100000, atol=1e-3)
    assert on_edge.all()
    # a 100 km UTM square away from the central meridian is not a lon/lat quadrilateral
    assert dense.symmetric_difference(plain).area > 0


def test_projected_to_projected_round_trip() -> None:
    sq = shapely.box(404400, 5341200, 405600, 5342400)
    there = transform_geometries([sq], 32633, 3857)
    back = transform_geometries(there, 3857, 32633)[0]
    assert back.symmetric_difference(sq).area < 1e-3


@pytest.mark.parametrize(("epsg", "lon"), [(32660, 180.0), (32601, -180.0), (32760, 179.99)])
def test_dateline_utm_patch_is_split(epsg: int, lon: float) -> None:
    sq = _utm_square_at(lon, 60.0 if epsg < 32700 else -60.0, epsg, 5000)
    out = transform_geometries([sq], epsg, 4326)[0]
    assert out.geom_type == "MultiPolygon" and out.is_valid
    parts = _parts(out)
    assert len(parts) == 2
    west = [p for p in parts if p.bounds[0] < 0]
    east = [p for p in parts if p.bounds[0] > 0]
    assert len(west) == 1 and len(east) == 1
    assert west[0].bounds[0] >= -180.0 and east[0].bounds[2] <= 180.0
    assert east[0].bounds[2] == pytest.approx(180.0)
    assert west[0].bounds[0] == pytest.approx(-180.0)
    for p in parts:
        assert p.bounds[2] - p.bounds[0] < 1.0  # no part spans the globe


def test_dateline_patch_to_other_zone_is_one_polygon() -> None:
    sq = _utm_square_at(180.0, 60.0, 32660, 5000)
    out = transform_geometries([sq], 32660, 32601)[0]
    assert out.geom_type == "Polygon"
    assert out.area == pytest.approx(sq.area, rel=0.01)


def test_geographic_input_over_180_and_long_way_round() -> None:
    over = shapely.box(179.5, 10, 180.5, 11)
    long_way = shapely.Polygon([(179.5, 10), (-179.5, 10), (-179.5, 11), (179.5, 11)])
    shifted = shapely.box(181, 0, 182, 1)
    plain = shapely.box(10, 10, 11, 11)
    out = transform_geometries([over, long_way, shifted, plain], "EPSG:4326", "EPSG:4326")
    for geom in out[:2]:
        assert geom.geom_type == "MultiPolygon"
        b = sorted(p.bounds for p in _parts(geom))
        assert b[0] == pytest.approx((-180.0, 10, -179.5, 11))
        assert b[1] == pytest.approx((179.5, 10, 180.0, 11))
    assert out[2].equals(shapely.box(-179, 0, -178, 1))
    assert out[3].equals(plain)


def test_split_geographic_input_to_utm_is_contiguous() -> None:
    split = shapely.MultiPolygon(
        [shapely.box(179.9, 60, 180, 60.1), shapely.box(-180, 60, -179.9, 60.1)]
    )
    out = transform_geometries([split], 4326, 32660)[0]
    # both halves land side by side in zone 60; their union is one piece
    assert shapely.union_all(_parts(out)).geom_type == "Polygon"


def test_unwrap_and_split_helpers() -> None:
    g = shapely.Polygon([(179, 0), (-179, 0), (-179, 1), (179, 1)])
    u = unwrap_longitudes([g])[0]
    assert u.bounds == pytest.approx((179, 0, 181, 1))
    s = split_antimeridian([u, None])
    assert s[1] is None
    assert s[0].area == pytest.approx(2.0)


def test_three_d_input_and_none() -> None:
    sq3 = shapely.Polygon(
        [(404400, 5341200, 5), (405600, 5341200, 5), (405600, 5342400, 5), (404400, 5342400, 5)]
    )
    out = transform_geometries([sq3, None, shapely.Polygon()], 32633, 4326)
    assert not out[0].has_z
    assert out[1] is None
    assert out[2].is_empty


def test_by_crs_groups_keep_order() -> None:
    a = _utm_square_at(13.7, 48.2, 32633, 600)
    b = _utm_square_at(-7.4, 52.6, 32629, 600)
    out = transform_geometries_by_crs([a, b, a], ["EPSG:32633", "EPSG:32629", "EPSG:32633"], 4326)
    assert out[0].centroid.x == pytest.approx(13.7, abs=1e-3)
    assert out[1].centroid.x == pytest.approx(-7.4, abs=1e-3)
    assert out[2].equals(out[0])
    with pytest.raises(CsmoeDataError):
        transform_geometries_by_crs([a], [], 4326)


def test_repair_bow_tie_and_z() -> None:
    bow = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    z = shapely.Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1)])
    coll = shapely.GeometryCollection(
        [shapely.box(0, 0, 1, 1), shapely.LineString([(0, 0), (5, 5)])]
    )
    geoms, n = repair_geometries([bow, z, None, shapely.Point(0, 0), coll, shapely.Polygon()])
    assert n == 1
    assert geoms[0].geom_type == "MultiPolygon" and geoms[0].is_valid
    assert geoms[0].area == pytest.approx(0.5)
    assert not geoms[1].has_z and geoms[1].is_valid
    assert geoms[2] is None and geoms[3] is None and geoms[5] is None
    assert geoms[4].equals(shapely.box(0, 0, 1, 1))


def test_centroid_lonlat_across_dateline() -> None:
    sq = _utm_square_at(180.0, 60.0, 32660, 5000)
    lon, lat = centroid_lonlat([sq, None], 32660)
    assert abs(abs(lon[0]) - 180.0) < 1e-3
    assert lat[0] == pytest.approx(60.0, abs=1e-3)
    assert np.isnan(lon[1]) and np.isnan(lat[1])
    # area weighting: a lon/lat box's centroid lies equatorward of its middle latitude
    lon2, lat2 = centroid_lonlat([shapely.box(0, 0, 10, 80)], 4326)
    assert lon2[0] == pytest.approx(5.0)
    assert lat2[0] < 40.0


def test_crs_string() -> None:
    assert crs_string(32633) == "EPSG:32633"
    assert crs_string("epsg:4326") == "EPSG:4326"
    custom = "+proj=laea +lat_0=52 +lon_0=10 +x_0=1234 +y_0=0 +ellps=GRS80 +units=m"
    assert crs_string(custom).startswith(("PROJCRS", "PROJCS"))
    with pytest.raises(CsmoeDataError):
        crs_string("not a crs")


def test_small_footprints_keep_few_vertices_and_inputs_are_untouched() -> None:
    patch = shapely.box(
        404400, 5341200, 405600, 5342400
    )  # 1.2 km: edges cut into 1.2 km / 2 pieces
    before = shapely.get_coordinates(patch).copy()
    auto = transform_geometries([patch], 32633, 4326)[0]
    full = transform_geometries([patch], 32633, 4326, min_segment=0)[0]
    assert shapely.get_num_coordinates(auto) == 4 * 2 + 1
    assert shapely.get_num_coordinates(full) == 4 * 22 + 1
    # the coarser outline departs from the finer one by centimetres (1 degree < 111 km)
    assert shapely.hausdorff_distance(auto, full) * 111_000 < 0.05
    assert np.array_equal(shapely.get_coordinates(patch), before)


def test_point_xy_and_spatial_order_survive_empty_points() -> None:
    """shapely 2.2 raises on get_x of an empty point: a whole-globe grid's polar cells made one."""
    from csmoe_data.builder.describe import spatial_order
    from csmoe_data.geometry import point_xy

    points = np.array([shapely.Point(1, 2), shapely.Point(), None], dtype=object)
    x, y = point_xy(points)
    assert x[0] == 1 and y[0] == 2 and np.isnan(x[1:]).all() and np.isnan(y[1:]).all()
    geoms = np.array([shapely.box(5, 5, 6, 6), shapely.Polygon(), shapely.box(0, 0, 1, 1)])
    order = spatial_order(geoms, np.array(["EPSG:4326"] * 3, dtype=object))
    assert sorted(order) == [0, 1, 2] and order[-1] == 0


def test_points_lonlat_transforms_numbers_per_crs() -> None:
    """The numbers-only transform agrees with the geometry transform; NaN where none is defined."""
    from csmoe_data.geometry import point_xy, points_lonlat, transform_geometries_by_crs

    x = np.array([500_000.0, 10.5, 400_000.0, np.nan, 500_000.0])
    y = np.array([5_000_000.0, 45.2, 5_100_000.0, 1.0, np.inf])
    crs = ["EPSG:32633", "EPSG:4326", "EPSG:32632", "EPSG:32633", "EPSG:32633"]
    lon, lat = points_lonlat(x, y, crs)
    ref_lon, ref_lat = point_xy(
        transform_geometries_by_crs(shapely.points(x[:3], y[:3]), crs[:3], "EPSG:4326", 0)
    )
    assert np.allclose(lon[:3], ref_lon, rtol=0, atol=1e-9)
    assert np.allclose(lat[:3], ref_lat, rtol=0, atol=1e-9)
    assert (lon[1], lat[1]) == (10.5, 45.2)  # already lon/lat: untouched
    assert np.isnan(lon[3:]).all() and np.isnan(lat[3:]).all()  # no point; not a number
    with pytest.raises(CsmoeDataError):
        points_lonlat(x, y, crs[:2])


def test_convex_quadrilaterals_are_valid_and_grid_cells_are_found():
    """Every polygon taken as a convex quadrilateral is valid to GEOS; boxes are taken."""
    from csmoe_data.geometry import convex_quadrilaterals

    rng = np.random.default_rng(11)
    quads = [shapely.Polygon(rng.uniform(-1, 1, (4, 2))) for _ in range(3000)]  # many bow-ties
    far = [
        shapely.affinity.rotate(shapely.box(x, 5e6, x + s, 5e6 + s), a)
        for x, s, a in zip(rng.uniform(1e5, 9e5, 200), rng.uniform(1e-6, 500, 200),
                           rng.uniform(0, 90, 200), strict=True)
    ]  # fmt: skip
    special = [
        shapely.box(0, 0, 1, 1),
        shapely.Polygon([(0, 0), (1, 0), (2, 0), (1, 1)]),  # a straight corner: not taken
        shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)]),  # bow-tie
        shapely.Polygon([(0, 0), (1, 0), (1, 0), (0, 1)]),  # a repeated corner
        shapely.Polygon([(0, 0), (1, 0), (1, 1e-17), (0, 1e-17)]),  # nearly flat
        shapely.Polygon([(0, 0), (np.nan, 0), (1, 1), (0, 1)]),
        shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2), (1, 2)]]),
        shapely.MultiPolygon([shapely.box(0, 0, 1, 1)]),
        shapely.Polygon(),
        None,
    ]
    geoms = np.array(quads + far + special, dtype=object)
    taken = convex_quadrilaterals(geoms)
    present = ~shapely.is_missing(geoms)
    assert shapely.is_valid(geoms[taken]).all()
    assert not taken[~present].any()
    assert taken[len(quads) : len(quads) + len(far)].all()  # rotated boxes far from the origin
    assert taken[len(quads) + len(far)] and not taken[len(quads) + len(far) + 1 :].any()
    # among the random quadrilaterals, the convex ones are taken (all but the nearly flat)
    q = geoms[: len(quads)]
    convex = shapely.is_valid(q) & np.isclose(shapely.area(shapely.convex_hull(q)), shapely.area(q))
    assert (
        taken[: len(quads)].sum() > 0.99 * convex.sum() and not taken[: len(quads)][~convex].any()
    )
