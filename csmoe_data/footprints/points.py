"""Point locations to square footprints, centred on each point in its local UTM zone.

SSL4EO-S12 samples its patches around sampled locations: each patch is a square of fixed size
(264 x 264 pixels at 10 m, about 2.64 km) in the local UTM projection, centred on the location.
:func:`points_to_footprints` makes the same footprints from any points: the point is taken to
lon/lat, its standard 6-degree UTM zone is chosen (EPSG:326zz north of the equator, 327zz south),
and the square of side ``size_m`` metres centred on the point's easting/northing is the
footprint, kept in that zone's CRS.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray

from csmoe_data.errors import CsmoeDataError

__all__ = ["is_point_geometry", "points_to_footprints", "squares_around_lonlat"]


def is_point_geometry(geoms: Any) -> bool:
    """Whether every present, non-empty geometry is a Point (and there is at least one)."""
    arr = np.asarray(getattr(geoms, "values", geoms), dtype=object)
    present = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    if not present.any():
        return False
    return bool((shapely.get_type_id(arr[present]) == 0).all())


def _check_size(size_m: float) -> float:
    size = float(size_m)
    if not math.isfinite(size) or size <= 0:
        raise CsmoeDataError(f"--point-size must be a positive number of metres, got {size_m}")
    return size


def squares_around_lonlat(
    lon: NDArray[np.float64], lat: NDArray[np.float64], size_m: float
) -> tuple[NDArray[np.object_], list[str]]:
    """Squares of ``size_m`` metres centred on lon/lat points, each in its local UTM zone.

    Returns:
        ``(squares, crs_values)``: shapely polygons in each point's UTM CRS and ``EPSG:<code>``.

    Raises:
        CsmoeDataError: on a bad size, or non-finite or out-of-range coordinates.
    """
    from csmoe_data.footprints.grid import utm_zone

    size = _check_size(size_m)
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise CsmoeDataError("points must have finite coordinates")
    if (np.abs(lat) > 90).any():
        raise CsmoeDataError("point latitudes must lie in [-90, 90]")
    if (np.abs(lat) > 84).any():
        raise CsmoeDataError(
            "points beyond 84 degrees of latitude lie outside the UTM zones; "
            "give footprints as polygons there"
        )
    epsg = np.where(lat >= 0, 32600, 32700) + utm_zone(lon)
    squares = np.empty(len(lon), dtype=object)
    half = size / 2.0
    for code in np.unique(epsg).tolist():
        sel = np.flatnonzero(epsg == code)
        t = pyproj.Transformer.from_crs(4326, int(code), always_xy=True)
        x, y = t.transform(lon[sel], lat[sel])
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        squares[sel] = shapely.box(x - half, y - half, x + half, y + half)
    return squares, [f"EPSG:{e}" for e in epsg.tolist()]


def points_to_footprints(points: Any, size_m: float, crs: Any = None) -> pd.DataFrame:
    """Square footprints of ``size_m`` metres centred on points, each in its local UTM zone.

    Args:
        points: a GeoDataFrame (or GeoSeries) of Point geometries in any CRS.
        size_m: the squares' side in metres (SSL4EO-S12: 2640).
        crs: the points' CRS when ``points`` carries none.

    Returns:
        A DataFrame with the input's columns (same index and order), ``geometry`` replaced by the
        squares (shapely polygons, each in its own UTM CRS), and a ``crs`` column
        (``EPSG:326zz`` / ``EPSG:327zz``), plus ``point_lon`` / ``point_lat`` (the centres).

    Raises:
        CsmoeDataError: no CRS, non-point or missing geometries, bad size or coordinates.
    """
    import geopandas as gpd

    if isinstance(points, gpd.GeoSeries):
        points = gpd.GeoDataFrame(geometry=points)
    if not isinstance(points, gpd.GeoDataFrame):
        raise CsmoeDataError("points_to_footprints expects a GeoDataFrame of points")
    src_crs = points.crs if points.crs is not None else crs
    if src_crs is None:
        raise CsmoeDataError("the points have no CRS; give one (--crs EPSG:4326)")
    geoms = np.asarray(points.geometry.values, dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        raise CsmoeDataError(f"{int(missing.sum())} point(s) without coordinates")
    if not (shapely.get_type_id(geoms) == 0).all():
        raise CsmoeDataError("--point-size needs Point geometries; the source holds other shapes")
    x = shapely.get_x(geoms)
    y = shapely.get_y(geoms)
    src = pyproj.CRS.from_user_input(src_crs)
    if src.equals(pyproj.CRS.from_epsg(4326), ignore_axis_order=True):
        lon, lat = x, y
    else:
        t = pyproj.Transformer.from_crs(src, 4326, always_xy=True)
        lon, lat = (np.asarray(v, dtype=float) for v in t.transform(x, y))
    squares, crs_values = squares_around_lonlat(lon, lat, size_m)
    out = pd.DataFrame(points.drop(columns=[points.geometry.name]))
    out["geometry"] = pd.Series(list(squares), index=out.index, dtype=object)
    out["crs"] = pd.Series(crs_values, index=out.index, dtype=object)
    out["point_lon"] = np.mod(np.asarray(lon) + 180.0, 360.0) - 180.0
    out["point_lat"] = np.asarray(lat)
    return out
