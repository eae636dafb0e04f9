"""The Major TOM grid: the global grid of Major TOM (Francis & Czerkawski 2024) as footprints.

Definition, as published in ESA-PhiLab/Major-TOM ``majortom/grid.py`` (class ``Grid``) and the
paper (arXiv:2402.12095): with ``D`` the cell size in km and ``R = 6378.137`` km (the equatorial
radius), the meridian half-circumference ``pi * R`` is cut into ``n = ceil(pi * R / D)`` equal
steps, giving row latitudes ``j * 180 / n`` (``-90 <= lat < 90``); row ``j >= 0`` is named
``<j>U``, row ``j < 0`` ``<-j>D``. Along a row at latitude ``lat`` the parallel
``2 * pi * R * cos(lat)`` is cut into ``m = ceil(2 * pi * R * cos(lat) / D)`` equal steps, giving
column longitudes ``c * 360 / m`` (``-180 <= lon < 180``), named ``<c>R`` for ``c >= 0`` and
``<-c>L`` for ``c < 0``. A grid point is the bottom-left corner of its cell; the cell reaches the
next row's latitude and the next column's longitude (so cells of one row are equal, and every
row has its own column width). Cell ids are ``<row>_<col>``, e.g. ``123U_456R``. By default the
grid spans row latitudes -85..85, as Major TOM's.

A point belongs to the cell whose corner is the last grid point strictly below and strictly left
of it (Major TOM's ``latlon2rowcol``: ``searchsorted(..) - 1``), so a point exactly on a grid line
belongs to the cell below / to the left; west of a row's first column it wraps to the row's last
column, which reaches past 180 degrees.

Each cell's UTM zone is that of its bottom-left corner, with the Norway and Svalbard exceptions,
as Major TOM's ``get_utm_zone_from_latlng`` (``utm_definition='bottomleft'``).

Functions: :func:`grid_latitudes`, :func:`row_longitudes`, :func:`cell_id` (points to ids),
:func:`parse_cell_id`, :func:`cell_polygon` (id to lon/lat polygon), :func:`cells_in_bbox`
(every cell overlapping a bbox, as a GeoDataFrame that ``build-manifest --footprints`` reads).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import cache

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.options import MAJORTOM_CELL_SIZE_KM

__all__ = [
    "DEFAULT_CELL_SIZE_KM",
    "DEFAULT_LATITUDE_RANGE",
    "RADIUS_EQUATOR_KM",
    "cell_id",
    "cell_polygon",
    "cells_in_bbox",
    "grid_latitudes",
    "majortom_utm_epsg",
    "parse_cell_id",
    "row_longitudes",
]

#: Major TOM's Earth radius (the WGS 84 equatorial radius), km
RADIUS_EQUATOR_KM = 6378.137
#: Major TOM Core's cell size, km
DEFAULT_CELL_SIZE_KM = MAJORTOM_CELL_SIZE_KM
#: row latitudes kept by Major TOM's ``Grid`` (inclusive)
DEFAULT_LATITUDE_RANGE = (-85.0, 85.0)

_ID = re.compile(r"^\s*(\d+)([UD])_(\d+)([RL])\s*$")


def _check_size(dist_km: float) -> float:
    d = float(dist_km)
    if not math.isfinite(d) or d <= 0:
        raise CsmoeDataError(f"Major TOM cell size must be a positive number of km, got {dist_km}")
    return d


@cache
def grid_latitudes(dist_km: float = DEFAULT_CELL_SIZE_KM) -> tuple[NDArray[np.float64], int]:
    """Row latitudes of the whole grid, south to north, and the index of row ``0U``.

    Computed as Major TOM computes them (``linspace(-90, 90, n + 1)[:-1]`` shifted by a
    modulo into ``[-90, 90)`` and sorted), so that the floats, hence boundary decisions, agree.

    Raises:
        CsmoeDataError: on a non-positive cell size.
    """
    d = _check_size(dist_km)
    n = math.ceil(math.pi * RADIUS_EQUATOR_KM / d)
    lats = np.sort(np.mod(np.linspace(-90.0, 90.0, n + 1)[:-1], 180.0) - 90.0)
    lats.setflags(write=False)
    return lats, int(np.searchsorted(lats, 0.0))


def _columns_at(lat: float, dist_km: float) -> int:
    circumference = 2.0 * math.pi * RADIUS_EQUATOR_KM * math.cos(lat * math.pi / 180.0)
    return math.ceil(circumference / dist_km)


@cache
def _row_lons(m: int) -> tuple[NDArray[np.float64], int]:
    lons = np.sort(np.mod(np.linspace(-180.0, 180.0, m + 1)[:-1], 360.0) - 180.0)
    lons.setflags(write=False)
    return lons, int(np.flatnonzero(lons == 0.0)[0])


def row_longitudes(row: int, dist_km: float = DEFAULT_CELL_SIZE_KM) -> NDArray[np.float64]:
    """Column longitudes (west to east) of signed row ``row`` (``0`` = ``0U``, ``-1`` = ``1D``).

    Raises:
        CsmoeDataError: if the row does not exist at this cell size.
    """
    lats, zero = grid_latitudes(dist_km)
    i = zero + int(row)
    if not 0 <= i < len(lats):
        raise CsmoeDataError(f"Major TOM row {row} does not exist at {dist_km} km")
    return _row_lons(_columns_at(float(lats[i]), float(dist_km)))[0]


def _row_name(j: int) -> str:
    return f"{j}U" if j >= 0 else f"{-j}D"


def _col_name(c: int) -> str:
    return f"{c}R" if c >= 0 else f"{-c}L"


def parse_cell_id(text: str) -> tuple[int, int]:
    """Signed ``(row, col)`` of an id such as ``123U_456R`` (``D`` and ``L`` are negative).

    Raises:
        CsmoeDataError: if the text is not a Major TOM cell id.
    """
    match = _ID.match(str(text))
    if match is None:
        raise CsmoeDataError(f"{text!r} is not a Major TOM cell id such as 123U_456R")
    r, ud, c, rl = match.groups()
    return (int(r) if ud == "U" else -int(r)), (int(c) if rl == "R" else -int(c))


def majortom_utm_epsg(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.int64]:
    """EPSG code of the UTM zone Major TOM gives a cell corner (Norway/Svalbard exceptions)."""
    la = np.asarray(lat, dtype=float)
    lo = np.asarray(lon, dtype=float)
    zone = np.mod(np.floor((lo + 180.0) / 6.0), 60).astype(np.int64) + 1
    zone = np.where((la >= 56) & (la < 64) & (lo >= 3) & (lo < 12), 32, zone)
    sval = (la >= 72) & (la < 84)
    for lo0, lo1, z in ((0, 9, 31), (9, 21, 33), (21, 33, 35), (33, 42, 37)):
        zone = np.where(sval & (lo >= lo0) & (lo < lo1), z, zone)
    return np.where(la < 0, 32700, 32600) + zone


def _in_range(lat: float, latitude_range: Sequence[float]) -> bool:
    return bool(latitude_range[0] <= lat <= latitude_range[1])


def cell_id(
    lon: ArrayLike,
    lat: ArrayLike,
    dist_km: float = DEFAULT_CELL_SIZE_KM,
    latitude_range: Sequence[float] = DEFAULT_LATITUDE_RANGE,
) -> list[str]:
    """Major TOM cell id of each point (lon/lat degrees, EPSG:4326).

    Raises:
        CsmoeDataError: on non-finite coordinates, or a point whose row lies outside
            ``latitude_range`` (Major TOM has no cells there).
    """
    lo = np.atleast_1d(np.asarray(lon, dtype=float))
    la = np.atleast_1d(np.asarray(lat, dtype=float))
    if lo.shape != la.shape:
        raise CsmoeDataError(f"{lo.size} longitudes but {la.size} latitudes")
    if not (np.isfinite(lo).all() and np.isfinite(la).all()):
        raise CsmoeDataError("points must have finite coordinates")
    if (np.abs(la) > 90).any():
        raise CsmoeDataError("latitudes must lie in [-90, 90]")
    lo = np.mod(lo + 180.0, 360.0) - 180.0
    lats, zero = grid_latitudes(dist_km)
    ri = np.searchsorted(lats, la) - 1  # Major TOM's latlon2rowcol: the row strictly below
    ri = np.where(ri < 0, 0, ri)
    out: list[str] = [""] * len(lo)
    for i in np.unique(ri).tolist():
        row_lat = float(lats[i])
        sel = np.flatnonzero(ri == i)
        if not _in_range(row_lat, latitude_range):
            raise CsmoeDataError(
                f"point ({lo[sel[0]]:.4f}, {la[sel[0]]:.4f}) lies in a row outside the Major TOM "
                f"grid's latitudes {tuple(latitude_range)}"
            )
        lons, z0 = _row_lons(_columns_at(row_lat, float(dist_km)))
        ci = np.searchsorted(lons, lo[sel]) - 1  # -1 (west of the first column) wraps to the last
        ci = np.where(ci < 0, len(lons) - 1, ci)
        rname = _row_name(i - zero)
        for k, c in zip(sel.tolist(), ci.tolist(), strict=True):
            out[k] = f"{rname}_{_col_name(c - z0)}"
    return out


def _cell_box(row: int, col: int, dist_km: float) -> tuple[float, float, float, float]:
    lats, zero = grid_latitudes(dist_km)
    i = zero + row
    if not 0 <= i < len(lats):
        raise CsmoeDataError(f"Major TOM row {_row_name(row)} does not exist at {dist_km} km")
    bottom = float(lats[i])
    top = float(lats[i + 1]) if i + 1 < len(lats) else bottom + float(lats[i] - lats[i - 1])
    lons, z0 = _row_lons(_columns_at(bottom, float(dist_km)))
    j = z0 + col
    if not 0 <= j < len(lons):
        raise CsmoeDataError(
            f"Major TOM column {_col_name(col)} does not exist in row {_row_name(row)}"
        )
    left = float(lons[j])
    right = float(lons[j + 1]) if j + 1 < len(lons) else left + float(lons[j] - lons[j - 1])
    return left, bottom, right, top


def cell_polygon(cell: str, dist_km: float = DEFAULT_CELL_SIZE_KM) -> shapely.Polygon:
    """The lon/lat rectangle (EPSG:4326) of a cell, from its grid point to the next row and column.

    The last column of a row reaches past 180 degrees; its polygon is left unsplit (longitudes
    above 180), which ``load_footprints`` and the engine read as crossing the antimeridian.

    Raises:
        CsmoeDataError: on a malformed id or a cell that does not exist at this size.
    """
    row, col = parse_cell_id(cell)
    return shapely.box(*_cell_box(row, col, float(dist_km)))


def cells_in_bbox(
    bbox: Sequence[float] | str,
    dist_km: float = DEFAULT_CELL_SIZE_KM,
    latitude_range: Sequence[float] = DEFAULT_LATITUDE_RANGE,
    max_cells: int | None = None,
) -> gpd.GeoDataFrame:
    """Every Major TOM cell overlapping a lon/lat bbox (``minlon > maxlon`` crosses 180).

    Args:
        bbox: ``(minlon, minlat, maxlon, maxlat)`` or its comma-separated text.
        dist_km: cell size in km (Major TOM Core: 10).
        latitude_range: row latitudes kept (Major TOM's default -85..85).
        max_cells: raise instead of returning more cells than this.

    Returns:
        A GeoDataFrame in EPSG:4326, ordered south to north then west to east, with
        ``patch_id`` (the cell id), ``row``/``col`` (names such as ``123U``/``456R``),
        ``row_idx``/``col_idx`` (signed integers), ``utm_crs`` (Major TOM's zone of the
        corner), ``cell_size_km``, and the cell rectangle (split at the antimeridian).

    Raises:
        CsmoeDataError: on a bad bbox or size, no cell, or more than ``max_cells`` cells.
    """
    from csmoe_data.footprints.grid import parse_bbox
    from csmoe_data.geometry import split_antimeridian

    minlon, minlat, maxlon, maxlat = parse_bbox(bbox)
    d = _check_size(dist_km)
    lats, zero = grid_latitudes(d)
    # rows whose band [lat_i, lat_i+1) overlaps (minlat, maxlat)
    i0 = max(int(np.searchsorted(lats, minlat, side="right")) - 1, 0)
    i1 = int(np.searchsorted(lats, maxlat, side="left"))
    intervals = [(minlon, maxlon)] if minlon < maxlon else [(minlon, 180.0), (-180.0, maxlon)]
    ids: list[str] = []
    rows: list[str] = []
    cols: list[str] = []
    row_idx: list[int] = []
    col_idx: list[int] = []
    boxes: list[tuple[float, float, float, float]] = []
    for i in range(i0, i1):
        bottom = float(lats[i])
        if not _in_range(bottom, latitude_range):
            continue
        top = float(lats[i + 1]) if i + 1 < len(lats) else bottom + float(lats[i] - lats[i - 1])
        lons, z0 = _row_lons(_columns_at(bottom, d))
        width = float(lons[1] - lons[0]) if len(lons) > 1 else 360.0
        rights = np.append(lons[1:], lons[-1] + width)
        picked: set[int] = set()
        for lo, hi in intervals:
            # columns overlapping (lo, hi), including the last column's part beyond 180
            hit = (lons < hi) & (rights > lo)
            hit |= (rights - 360.0 > lo) & (lons - 360.0 < hi)
            picked.update(np.flatnonzero(hit).tolist())
        for j in sorted(picked):
            r, c = i - zero, j - z0
            ids.append(f"{_row_name(r)}_{_col_name(c)}")
            rows.append(_row_name(r))
            cols.append(_col_name(c))
            row_idx.append(r)
            col_idx.append(c)
            boxes.append((float(lons[j]), bottom, float(rights[j]), top))
        if max_cells is not None and len(ids) > max_cells:
            raise CsmoeDataError(
                f"the Major TOM grid has more than --max-cells {max_cells:,} cells in this bbox; "
                "use a smaller bbox or a larger cell size"
            )
    if not ids:
        raise CsmoeDataError(f"no Major TOM cell overlaps bbox {(minlon, minlat, maxlon, maxlat)}")
    b = np.asarray(boxes)
    geoms = split_antimeridian(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3]))
    epsg = majortom_utm_epsg(b[:, 1], b[:, 0])
    return gpd.GeoDataFrame(
        {
            "patch_id": pd.Series(ids, dtype=object),
            "row": pd.Series(rows, dtype=object),
            "col": pd.Series(cols, dtype=object),
            "row_idx": np.asarray(row_idx, dtype=np.int64),
            "col_idx": np.asarray(col_idx, dtype=np.int64),
            "utm_crs": pd.Series([f"EPSG:{e}" for e in epsg.tolist()], dtype=object),
            "cell_size_km": np.full(len(ids), d),
        },
        geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"),
        crs="EPSG:4326",
    )
