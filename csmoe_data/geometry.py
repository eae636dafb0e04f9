"""Footprint geometry: reprojection with densified edges, antimeridian splitting, repair.

Everything here is vectorised over numpy object arrays of shapely 2 geometries.

Conventions:

* Coordinates are always ``(x, y)`` = ``(lon, lat)`` for geographic CRSs (pyproj ``always_xy``).
* A footprint never spans more than 180 degrees of longitude. A geographic geometry whose
  longitudes span more than that is taken to cross the antimeridian (written "the long way
  round", e.g. ``179 .. -179``) and is unwrapped before anything else.
* Geographic outputs have longitudes in ``[-180, 180]``; a footprint crossing the antimeridian
  becomes a MultiPolygon with parts on both sides, none spanning the globe.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray

from csmoe_data.errors import CsmoeDataError

__all__ = [
    "as_geometry_array",
    "centroid_lonlat",
    "crs_string",
    "is_geographic",
    "repair_geometries",
    "split_antimeridian",
    "to_crs",
    "transform_geometries",
    "transform_geometries_by_crs",
    "unwrap_longitudes",
]

CrsLike = Any  # anything pyproj.CRS.from_user_input accepts (str, int, CRS, rasterio CRS, WKT)

#: tolerance (degrees) under which a longitude just past +-180 is snapped back (float noise)
_LON_SNAP = 1e-9


# --------------------------------------------------------------------------- CRS helpers


@functools.lru_cache(maxsize=256)
def _crs_cached(text: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(text)


def to_crs(value: CrsLike) -> pyproj.CRS:
    """Parse anything pyproj understands (``"EPSG:32633"``, 4326, WKT, a rasterio CRS) into a CRS.

    Raises:
        CsmoeDataError: if ``value`` is empty or not a CRS pyproj knows.
    """
    if isinstance(value, pyproj.CRS):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CsmoeDataError("missing CRS")
    if hasattr(value, "to_wkt") and not isinstance(value, str):  # rasterio.crs.CRS and friends
        value = value.to_wkt()
    try:
        if isinstance(value, str):
            return _crs_cached(value)
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as exc:
        raise CsmoeDataError(f"unknown CRS {str(value)[:80]!r}: {exc}") from exc


def crs_string(value: CrsLike) -> str:
    """Canonical text of a CRS: ``"EPSG:<code>"`` when it has an EPSG code, else its WKT.

    Raises:
        CsmoeDataError: if ``value`` is not a CRS.
    """
    crs = to_crs(value)
    # min_confidence 70: accept WKT of a UTM zone that spells its axes differently (BigEarthNet JSON)
    epsg = crs.to_epsg(min_confidence=70)
    if epsg is not None:
        return f"EPSG:{epsg}"
    auth = crs.to_authority(min_confidence=70)
    if auth is not None:
        return f"{auth[0]}:{auth[1]}"
    return crs.to_wkt()


def is_geographic(value: CrsLike) -> bool:
    """Whether a CRS has longitude/latitude axes (EPSG:4326, 4269, ...)."""
    return bool(to_crs(value).is_geographic)


@functools.lru_cache(maxsize=256)
def _transformer(src: pyproj.CRS, dst: pyproj.CRS) -> pyproj.Transformer:
    # cached: building a transformer costs ~ms, transforming a footprint ~us
    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def as_geometry_array(geoms: Iterable[Any] | Any) -> NDArray[np.object_]:
    """A 1-D numpy object array of shapely geometries (or None) from a GeoSeries, list or array."""
    if isinstance(geoms, shapely.Geometry):
        out = np.empty(1, dtype=object)
        out[0] = geoms
        return out
    values = getattr(geoms, "values", geoms)  # GeoSeries -> GeometryArray
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy()
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype == object:
        return values.copy()  # no element-by-element pass over a batch of geometries
    items = list(values)
    arr: NDArray[np.object_] = np.empty(len(items), dtype=np.object_)
    arr[:] = items
    return arr


# --------------------------------------------------------------------------- longitude handling


def _per_geom_lon_stats(
    coords: NDArray[np.float64], index: NDArray[np.intp], n: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """First longitude, min and max longitude of each geometry (NaN/inf where it has none)."""
    first = np.full(n, np.nan)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    if len(index):
        # get_coordinates is ordered by geometry: runs of equal index, so reduceat works per run
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        owners = index[starts]
        lon = coords[:, 0]
        first[owners] = lon[starts]
        lo[owners] = np.minimum.reduceat(lon, starts)
        hi[owners] = np.maximum.reduceat(lon, starts)
    return first, lo, hi


def _unwrap_coords(
    coords: NDArray[np.float64], index: NDArray[np.intp], n: int
) -> NDArray[np.bool_]:
    """Unwrap longitudes in place (see :func:`unwrap_longitudes`); return which geometries moved."""
    first, lo, hi = _per_geom_lon_stats(coords, index, n)
    needs = (hi - lo) > 180.0
    if needs.any():
        rows = needs[index]
        ref = first[index[rows]]
        coords[rows, 0] = ref + np.mod(coords[rows, 0] - ref + 180.0, 360.0) - 180.0
    return needs


def unwrap_longitudes(geoms: Iterable[Any]) -> NDArray[np.object_]:
    """Make the longitudes of each geographic geometry continuous across the antimeridian.

    A geometry whose longitudes span more than 180 degrees is taken to go "the long way round":
    each longitude is moved by a multiple of 360 to lie within 180 degrees of the geometry's first
    vertex (so ``179, -179`` becomes ``179, 181``). Geometries spanning less are left as they are.
    The result may have longitudes outside ``[-180, 180]``; see :func:`split_antimeridian`.

    Args:
        geoms: shapely geometries in a geographic CRS (lon, lat order).

    Returns:
        A new object array; None and empty geometries pass through.
    """
    arr = as_geometry_array(geoms)
    coords, index = shapely.get_coordinates(arr, return_index=True)
    out = arr.copy()
    if not len(coords):
        return out
    needs = _unwrap_coords(coords, index, len(arr))
    if needs.any():
        sel = np.flatnonzero(needs)
        moved = coords[needs[index]]
        out[sel] = shapely.set_coordinates(arr[sel].copy(), moved)
    return out


def _polygonal_or_same_dim(parts: list[Any], dim: int) -> Any:
    """Combine the parts of dimension ``dim`` into one (multi-)geometry, or None if none remain."""
    keep: list[Any] = []
    for part in parts:
        for p in shapely.get_parts(part):
            if shapely.get_dimensions(p) == dim and not p.is_empty:
                keep.append(p)
    if not keep:
        return None
    if len(keep) == 1:
        return keep[0]
    if dim == 2:
        return shapely.MultiPolygon(keep)
    if dim == 1:
        return shapely.MultiLineString(keep)
    return shapely.MultiPoint(keep)


def _split_one(geom: Any) -> Any:
    minx, _, maxx, _ = geom.bounds
    dim = int(shapely.get_dimensions(geom))
    k_lo = int(np.floor((minx + 180.0) / 360.0))
    k_hi = int(np.floor((maxx + 180.0) / 360.0))
    parts: list[Any] = []
    for k in range(k_lo, k_hi + 1):
        west = -180.0 + 360.0 * k
        # latitudes are unbounded here on purpose: clipping only cuts longitudes
        window = shapely.box(west, -1e9, west + 360.0, 1e9)
        piece = shapely.intersection(geom, window)
        if piece is None or piece.is_empty:
            continue
        if k:
            piece = shapely.transform(piece, lambda c, k=k: c - np.array([360.0 * k, 0.0]))
        parts.append(piece)
    return _polygonal_or_same_dim(parts, dim)


def split_antimeridian(geoms: Iterable[Any]) -> NDArray[np.object_]:
    """Cut geographic geometries at the antimeridian and bring every part into ``[-180, 180]``.

    Expects continuous longitudes (see :func:`unwrap_longitudes`); a polygon over ``179 .. 181``
    becomes a MultiPolygon with parts over ``179 .. 180`` and ``-180 .. -179``.

    Args:
        geoms: shapely geometries in a geographic CRS (lon, lat order).

    Returns:
        A new object array; None and empty geometries pass through.
    """
    arr = as_geometry_array(geoms)
    out = arr.copy()
    valid = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    if not valid.any():
        return out
    bounds = shapely.bounds(arr[valid])
    vidx = np.flatnonzero(valid)
    # snap float noise (180.0000000001) so that it does not make a sliver part
    over = (bounds[:, 0] < -180.0 - _LON_SNAP) | (bounds[:, 2] > 180.0 + _LON_SNAP)
    near = ~over & ((bounds[:, 0] < -180.0) | (bounds[:, 2] > 180.0))
    if near.any():
        sel = vidx[near]
        out[sel] = shapely.transform(
            arr[sel], lambda c: np.column_stack([np.clip(c[:, 0], -180.0, 180.0), c[:, 1]])
        )
    for i in vidx[over]:
        out[i] = _split_one(arr[i])
    return out


# --------------------------------------------------------------------------- transforms


def _densify(arr: NDArray[np.object_], densify_pts: int, min_segment: float) -> NDArray[np.object_]:
    """Cut each edge into about ``densify_pts + 1`` pieces, none shorter than ``min_segment``.

    The segment length comes from each geometry's bbox (its longer side / (densify_pts + 1)).
    """
    if densify_pts <= 0:
        return arr
    valid = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    if not valid.any():
        return arr
    b = shapely.bounds(arr[valid])
    extent = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    # the 1e-9 slack keeps float rounding from adding one more segment per edge
    length = np.maximum(extent * (1.0 + 1e-9) / (densify_pts + 1), min_segment)
    ok = (extent > 0) & (length < extent)
    if not ok.any():
        return arr
    out = arr.copy()
    sel = np.flatnonzero(valid)[ok]
    out[sel] = shapely.segmentize(arr[sel], length[ok])
    return out


def _default_min_segment(crs: pyproj.CRS) -> float:
    """Shortest segment worth cutting, in the CRS's units: ~1 km (or 0.01 degree).

    Over a segment that short the image of a straight edge departs from its chord by centimetres
    at most in common projections (far below a 10 m pixel), so small patches keep few vertices,
    which makes everything downstream faster.
    """
    if crs.is_geographic:
        return 0.01
    try:
        factor = float(crs.axis_info[0].unit_conversion_factor) if crs.axis_info else 1.0
    except (AttributeError, IndexError, TypeError, ValueError):
        factor = 1.0
    return 1000.0 / (factor or 1.0)


def transform_geometries(
    geoms: Iterable[Any],
    src_crs: CrsLike,
    dst_crs: CrsLike,
    densify_pts: int = 21,
    min_segment: float | None = None,
) -> NDArray[np.object_]:
    """Reproject footprints, densifying edges first and splitting at the antimeridian.

    Steps: (1) a geographic source is unwrapped where it spans more than 180 degrees of longitude
    (longitudes > 180 or "the long way round" are both accepted); (2) every edge gets up to
    ``densify_pts`` extra vertices, in source units, because straight edges do not stay straight
    (a UTM square is not a square in lon/lat); (3) coordinates are transformed with a cached
    ``pyproj.Transformer`` (``always_xy=True``) in one vectorised call; (4) when ``dst_crs`` is
    geographic, parts are cut at the antimeridian so that none spans more than 180 degrees, with
    longitudes in ``[-180, 180]`` (a UTM zone 1 or 60 patch over the dateline becomes a 2-part
    MultiPolygon).

    Args:
        geoms: shapely geometries (GeoSeries, list or object array), all in ``src_crs``.
        src_crs: their CRS (anything pyproj accepts).
        dst_crs: the target CRS.
        densify_pts: most extra vertices per edge (0 disables densification).
        min_segment: no edge is cut into pieces shorter than this, in source units (default
            1 km, or 0.01 degree for a geographic source: chords that short are right to within
            centimetres). A 1.2 km patch gets one extra vertex per edge, a 100 km tile 21.

    Returns:
        An object array of the same length; None/empty inputs pass through, and rows whose
        coordinates cannot be transformed (outside the target CRS's domain) come back as None.

    Raises:
        CsmoeDataError: if a CRS is not understood.
    """
    arr = as_geometry_array(geoms)
    src = to_crs(src_crs)
    dst = to_crs(dst_crs)
    if src.is_geographic:
        arr = unwrap_longitudes(arr)
    if src == dst:
        out = arr.copy()
        return split_antimeridian(out) if dst.is_geographic else out
    seg = _default_min_segment(src) if min_segment is None else float(min_segment)
    arr = _densify(arr, densify_pts, seg)
    coords, index = shapely.get_coordinates(arr, return_index=True)
    out = arr.copy()
    if not len(coords):
        return out
    x = np.ascontiguousarray(coords[:, 0])
    y = np.ascontiguousarray(coords[:, 1])
    _transformer(src, dst).transform(x, y, inplace=True, errcheck=False)
    coords[:, 0] = x
    coords[:, 1] = y
    finite = np.isfinite(x) & np.isfinite(y)
    if dst.is_geographic:
        _unwrap_coords(coords, index, len(arr))
    has_coords = np.zeros(len(arr), dtype=bool)
    has_coords[index] = True
    sel = np.flatnonzero(has_coords)
    out[sel] = shapely.set_coordinates(arr[sel].copy(), coords)
    if not finite.all():
        out[np.unique(index[~finite])] = None
    if dst.is_geographic:
        out = split_antimeridian(out)
    return out


def transform_geometries_by_crs(
    geoms: Iterable[Any],
    crs_values: Sequence[Any],
    dst_crs: CrsLike,
    densify_pts: int = 21,
    min_segment: float | None = None,
) -> NDArray[np.object_]:
    """:func:`transform_geometries` for a mixed-CRS table (each row has its own CRS).

    Rows are grouped by CRS so that each group is transformed in one vectorised call.

    Args:
        geoms: shapely geometries, one per row.
        crs_values: each row's CRS (e.g. the footprint table's ``crs`` column).
        dst_crs: the target CRS.
        densify_pts: most extra vertices per edge.
        min_segment: see :func:`transform_geometries`.

    Returns:
        An object array of the same length, in the input order.

    Raises:
        CsmoeDataError: if the lengths differ or a CRS is not understood.
    """
    arr = as_geometry_array(geoms)
    crs_arr = np.asarray([str(c) if c is not None else "" for c in crs_values], dtype=object)
    if len(crs_arr) != len(arr):
        raise CsmoeDataError(f"{len(arr)} geometries but {len(crs_arr)} CRS values")
    out = np.empty(len(arr), dtype=object)
    for value in dict.fromkeys(crs_arr.tolist()):
        sel = np.flatnonzero(crs_arr == value)
        out[sel] = transform_geometries(arr[sel], value, dst_crs, densify_pts, min_segment)
    return out


# --------------------------------------------------------------------------- repair


def drop_z(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """``shapely.force_2d`` where a geometry has Z or M, else ``geoms`` itself.

    ``force_2d`` copies every geometry; footprints are nearly always 2-D already, and checking
    is much cheaper than copying a batch of them.
    """
    has_m = getattr(shapely, "has_m", None)  # shapely >= 2.1
    if shapely.has_z(geoms).any() or (has_m is not None and has_m(geoms).any()):
        return np.asarray(shapely.force_2d(geoms), dtype=object)
    return geoms


def convex_quadrilaterals(geoms: NDArray[np.object_]) -> NDArray[np.bool_]:
    """Which geometries are strictly convex quadrilaterals: polygons certain to be valid.

    A polygon without holes whose ring has four corners and turns the same way at each of
    them, never straight, is simple (four turns of less than 180 degrees each cannot wind twice),
    so GEOS's validity check, the costly part of loading a grid of footprints (about a
    microsecond per polygon), can be skipped for it. Each turn is the sign of a cross product
    of two edges, taken as certain only when it exceeds a bound on its rounding error (64 ulp
    of the largest coordinate times the longest edge); nearly straight corners, and anything
    else, are left to GEOS.
    """
    out = np.zeros(len(geoms), dtype=bool)
    if not len(geoms):
        return out
    # a polygon of 5 coordinates has no hole (a hole needs 4 of its own)
    candidates = np.flatnonzero(
        (shapely.get_type_id(geoms) == 3) & (shapely.get_num_coordinates(geoms) == 5)
    )
    if not len(candidates):
        return out
    ring = shapely.get_coordinates(geoms[candidates]).reshape(-1, 10)  # x0 y0 x1 y1 ... x4 y4
    x, y = ring[:, 0::2], ring[:, 1::2]
    ex, ey = x[:, 1:] - x[:, :-1], y[:, 1:] - y[:, :-1]  # edge i: corner i to corner i + 1
    turn = ex * np.roll(ey, -1, axis=1) - ey * np.roll(ex, -1, axis=1)
    with np.errstate(invalid="ignore"):  # NaN/inf coordinates: not certain, left to GEOS
        longest = np.maximum(np.abs(ex).max(axis=1), np.abs(ey).max(axis=1))
        bound = 64.0 * np.finfo(np.float64).eps * np.abs(ring).max(axis=1) * longest
        closed = (x[:, 0] == x[:, 4]) & (y[:, 0] == y[:, 4])
        left = (turn > bound[:, None]).all(axis=1)
        right = (turn < -bound[:, None]).all(axis=1)
    out[candidates] = closed & np.isfinite(bound) & (left | right)
    return out


def repair_geometries(geoms: Iterable[Any]) -> tuple[NDArray[np.object_], int]:
    """Make footprints 2-D, valid and polygonal.

    Z/M are dropped (``shapely.force_2d``); invalid geometries (bow-ties, self-intersections,
    unclosed rings) go through ``shapely.make_valid``; GeometryCollections are exploded and only
    their polygonal parts kept (a lone Polygon, else a MultiPolygon).

    Args:
        geoms: shapely geometries.

    Returns:
        ``(repaired, n_repaired)``: an object array of the same length (None where nothing
        polygonal remains: missing, empty, point or line inputs) and the number of invalid
        geometries that were repaired.
    """
    arr = as_geometry_array(geoms)
    present = ~shapely.is_missing(arr)
    out = np.empty(len(arr), dtype=object)
    if not present.any():
        return out, 0
    flat = drop_z(arr[present])
    invalid = np.zeros(len(flat), dtype=bool)
    asked = ~convex_quadrilaterals(flat)  # the others are valid: GEOS need not be asked
    invalid[asked] = ~shapely.is_valid(flat[asked])
    n_repaired = int(invalid.sum())
    if n_repaired:
        flat = flat.copy()
        flat[invalid] = shapely.make_valid(flat[invalid])
    types = shapely.get_type_id(flat)
    # 3 Polygon, 6 MultiPolygon: already what we want when non-empty
    simple = np.isin(types, (3, 6)) & ~shapely.is_empty(flat)
    result = np.empty(len(flat), dtype=object)
    result[simple] = flat[simple]
    for i in np.flatnonzero(~simple):
        result[i] = _polygonal_or_same_dim([flat[i]], 2) if not flat[i].is_empty else None
    out[present] = result
    return out, n_repaired


# --------------------------------------------------------------------------- centroids


def centroid_lonlat(
    geoms: Iterable[Any], src_crs: CrsLike, densify_pts: int = 21
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Area-weighted centroid of each footprint in lon/lat, correct across the antimeridian.

    The footprint is taken to EPSG:4326, unwrapped (parts on both sides of the dateline rejoined),
    mapped to the cylindrical equal-area plane ``(lon, sin(lat))`` on the sphere, where the plain
    planar centroid weights by true area, and mapped back. Longitudes are wrapped into
    ``[-180, 180)``. Non-polygonal geometries get the centroid of their vertices' hull.

    Args:
        geoms: shapely geometries in ``src_crs``.
        src_crs: their CRS.
        densify_pts: extra vertices per edge for the reprojection.

    Returns:
        ``(lon, lat)`` float arrays, NaN where a geometry is None or empty.
    """
    ll = transform_geometries(geoms, src_crs, "EPSG:4326", densify_pts)
    ll = _rejoin(ll)

    def _to_cea(c: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.column_stack([c[:, 0], np.sin(np.radians(c[:, 1]))])

    cea = shapely.transform(ll, _to_cea)
    x, y = point_xy(shapely.centroid(cea))
    lon = np.mod(x + 180.0, 360.0) - 180.0
    lat = np.degrees(np.arcsin(np.clip(y, -1.0, 1.0)))
    return lon, lat


#: coordinates this far beyond the globe's edges are rounding (a polar cap written as 90.0000000001)
GLOBE_SLACK = 1e-9


def beyond_the_globe(geoms: NDArray[np.object_]) -> NDArray[np.bool_]:
    """Which lon/lat geometries reach outside lon -180..180 or lat -90..90.

    Missing and empty geometries (no bounds) are not flagged here.
    """
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    with np.errstate(invalid="ignore"):
        return (
            (bounds[:, 0] < -180.0 - GLOBE_SLACK)
            | (bounds[:, 2] > 180.0 + GLOBE_SLACK)
            | (bounds[:, 1] < -90.0 - GLOBE_SLACK)
            | (bounds[:, 3] > 90.0 + GLOBE_SLACK)
        )


def point_xy(points: NDArray[np.object_]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The x and y of an array of points, NaN where a point is None or empty.

    shapely 2.2's ``get_x`` raises on an empty point (the centroid of an empty footprint, or of
    one whose reprojection failed), so those are masked out first.
    """
    points = np.asarray(points, dtype=object)
    x = np.full(len(points), np.nan)
    y = np.full(len(points), np.nan)
    present = ~(shapely.is_missing(points) | shapely.is_empty(points))
    x[present] = shapely.get_x(points[present])
    y[present] = shapely.get_y(points[present])
    return x, y


def points_lonlat(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    crs_values: Sequence[Any] | NDArray[np.object_],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Longitude and latitude (EPSG:4326) of points given by coordinates, each in its own CRS.

    Numbers in, numbers out: one vectorised transform per CRS and no geometry made, for callers
    that need only the positions (ordering footprints by their centroids; going through
    :func:`transform_geometries_by_crs` rebuilt a point geometry per footprint, ~4 us each).

    Args:
        x: the points' x in their CRS (NaN for none).
        y: the points' y.
        crs_values: each point's CRS.

    Returns:
        ``(lon, lat)``, NaN where a point is NaN or outside its CRS's domain.

    Raises:
        CsmoeDataError: if the lengths differ or a CRS is not understood.
    """
    lon = np.array(x, dtype=np.float64)
    lat = np.array(y, dtype=np.float64)
    crs_arr = np.asarray([str(c) if c is not None else "" for c in crs_values], dtype=object)
    if not (len(crs_arr) == len(lon) == len(lat)):
        raise CsmoeDataError(f"{len(lon)} points but {len(crs_arr)} CRS values")
    dst = to_crs("EPSG:4326")
    for value in dict.fromkeys(crs_arr.tolist()):
        src = to_crs(value)
        if src == dst:
            continue
        sel = np.flatnonzero(crs_arr == value)
        xs = np.ascontiguousarray(lon[sel])
        ys = np.ascontiguousarray(lat[sel])
        _transformer(src, dst).transform(xs, ys, inplace=True, errcheck=False)
        lon[sel] = xs
        lat[sel] = ys
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    lon[bad] = np.nan
    lat[bad] = np.nan
    return lon, lat


def _rejoin(ll: NDArray[np.object_]) -> NDArray[np.object_]:
    """Undo an antimeridian split: shift parts so longitudes are continuous (may exceed 180)."""
    return unwrap_longitudes(ll)


#: a footprint whose corners move more than this (CRS units) on a round trip through lon/lat
#: lies outside its CRS's valid domain (a northing of 1e8 m, an easting of 1e9 m)
_ROUND_TRIP_TOLERANCE = 1.0


@functools.lru_cache(maxsize=1024)
def _trusted_box(text: str) -> tuple[float, float, float, float] | None:
    """A projected CRS's area of use in its own units, widened by half its size on each side."""
    crs = to_crs(text)
    area = crs.area_of_use
    if area is None:
        return None
    to_proj = _transformer(_crs_cached("EPSG:4326"), crs)
    x0, y0, x1, y1 = to_proj.transform_bounds(area.west, area.south, area.east, area.north)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return None
    wx, wy = 0.5 * (x1 - x0), 0.5 * (y1 - y0)
    return (x0 - wx, y0 - wy, x1 + wx, y1 + wy)


def outside_crs_domain(geoms: NDArray[np.object_], crs_values: Sequence[str]) -> NDArray[np.bool_]:
    """Which projected footprints have coordinates outside their CRS's valid domain.

    Rows whose bounding box lies well inside the CRS's area of use (widened by half its size
    on each side, so footprints of a neighbouring UTM zone pass at once) are accepted; the
    others have their bounding-box corners sent to lon/lat and back, and are flagged when that
    fails or lands elsewhere. Geographic CRSs and missing geometries are never flagged here.
    """
    flags = np.zeros(len(geoms), dtype=bool)
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    present = np.isfinite(bounds).all(axis=1)
    names, codes = np.unique(np.asarray(list(crs_values), dtype=str), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for k, text in enumerate(names.tolist()):
        crs = to_crs(text)
        if crs.is_geographic:
            continue
        rows = order[starts[k] : starts[k + 1]]
        rows = rows[present[rows]]
        b = bounds[rows]
        suspect = np.ones(len(rows), dtype=bool)
        box = _trusted_box(text)
        if box is not None:
            x0, y0, x1, y1 = box
            suspect = ~((b[:, 0] >= x0) & (b[:, 2] <= x1) & (b[:, 1] >= y0) & (b[:, 3] <= y1))
        if not suspect.any():
            continue
        idx = rows[suspect]
        xs = bounds[idx][:, [0, 2, 0, 2]].ravel()
        ys = bounds[idx][:, [1, 1, 3, 3]].ravel()
        fwd = _transformer(crs, _crs_cached("EPSG:4326"))
        back = _transformer(_crs_cached("EPSG:4326"), crs)
        with np.errstate(invalid="ignore"):
            lon, lat = fwd.transform(xs, ys, errcheck=False)
            rx, ry = back.transform(lon, lat, errcheck=False)
            err = np.hypot(np.asarray(rx) - xs, np.asarray(ry) - ys)
            bad = ~(err <= _ROUND_TRIP_TOLERANCE) | ~(np.abs(np.asarray(lat)) <= 90.0)
        flags[idx] = bad.reshape(-1, 4).any(axis=1)
    return flags
