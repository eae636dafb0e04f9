"""Plan footprints before imagery exists: square cells laid in the local UTM zone.

Cells are squares of ``cell_size`` metres in the WGS 84 / UTM zone of the place (EPSG:326zz north
of the equator, EPSG:327zz south of it), aligned to multiples of the cell size in easting and
northing, and named ``<zone><N|S>_<row>_<col>`` with ``row = floor(northing / size)`` and
``col = floor(easting / size)`` (zero-padded to 4 digits), e.g. ``33N_4821_0404`` for the 1 km
cell whose lower-left corner is E 404000, N 4821000 in EPSG:32633.

A bbox spanning several zones gets, in each zone, every cell of that zone's lattice that overlaps
the part of the bbox inside the zone (standard 6-degree zones; the Norway/Svalbard exceptions are
not used). Each cell belongs to one zone and one hemisphere: a cell that reaches across its
zone's meridian edge, or across the equator, is cut there (it is the square less the part in
the neighbouring zone, whose own cells cover that part), so cells never overlap at zone seams
and nothing is left uncovered. A bbox with ``minlon > maxlon`` crosses the antimeridian.

Grid files carry the columns ``patch_id``, ``utm_crs``, ``row``, ``col``, ``cell_size`` and a
lon/lat outline (EPSG:4326, split at the antimeridian) for viewing. ``load_footprints`` recognises
these columns and rebuilds each cell as its exact square in ``utm_crs`` (cut at its zone's
edges as above), in any file format.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

from csmoe_common.atomic import atomic_output
from csmoe_data.errors import CsmoeDataError
from csmoe_data.geometry import crs_string, transform_geometries

__all__ = [
    "GRID_COLUMNS",
    "cells_at_points",
    "clip_to_zones",
    "grid_cell_squares",
    "make_grid",
    "parse_bbox",
    "utm_epsg",
    "utm_zone",
    "write_grid",
    "zone_region",
]

#: columns that mark a file as a ``csmoe-data grid`` output
GRID_COLUMNS = frozenset({"patch_id", "utm_crs", "row", "col", "cell_size"})

#: output formats by suffix (GDAL driver names; None = GeoParquet)
_DRIVERS: dict[str, str | None] = {
    ".parquet": None,
    ".geoparquet": None,
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
}

# region outlines are densified to this step (degrees) before going into UTM: zone edges are
# meridians, which are curves in UTM
_REGION_STEP_DEG = 0.1
#: zone edges for cutting cells at the seams, densified finer (the cut cells of two zones meet)
_SEAM_STEP_DEG = 0.02


def utm_zone(lon: ArrayLike) -> NDArray[np.int64]:
    """The standard 6-degree UTM zone (1-60) of each longitude (180 belongs to zone 60)."""
    lon_arr = np.asarray(lon, dtype=float)
    wrapped = np.mod(lon_arr + 180.0, 360.0) - 180.0
    wrapped = np.where(lon_arr == 180.0, 180.0, wrapped)
    return np.clip(np.floor((wrapped + 180.0) / 6.0).astype(np.int64) + 1, 1, 60)


def utm_epsg(zone: int, north: bool) -> int:
    """EPSG code of WGS 84 / UTM ``zone`` (326zz north, 327zz south).

    Raises:
        CsmoeDataError: if ``zone`` is not in 1..60.
    """
    if not 1 <= int(zone) <= 60:
        raise CsmoeDataError(f"UTM zone must be 1..60, got {zone}")
    return (32600 if north else 32700) + int(zone)


def parse_bbox(text: str | Sequence[float]) -> tuple[float, float, float, float]:
    """Parse and check ``MINLON,MINLAT,MAXLON,MAXLAT`` (``minlon > maxlon`` crosses the antimeridian).

    Raises:
        CsmoeDataError: on a malformed or impossible bbox.
    """
    if isinstance(text, str):
        parts = [p for p in text.replace(" ", "").split(",") if p != ""]
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise CsmoeDataError(
                f"bbox {text!r} is not MINLON,MINLAT,MAXLON,MAXLAT numbers"
            ) from exc
    else:
        values = [float(v) for v in text]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise CsmoeDataError(
            f"bbox must be 4 finite numbers MINLON,MINLAT,MAXLON,MAXLAT, got {text!r}"
        )
    minlon, minlat, maxlon, maxlat = values
    if not (-180.0 <= minlon <= 180.0 and -180.0 <= maxlon <= 180.0):
        raise CsmoeDataError(f"bbox longitudes must lie in [-180, 180], got {minlon}, {maxlon}")
    if not (-90.0 <= minlat < maxlat <= 90.0):
        raise CsmoeDataError(
            f"bbox latitudes must satisfy -90 <= MINLAT < MAXLAT <= 90, got {minlat}, {maxlat}"
        )
    if minlon == maxlon:
        raise CsmoeDataError("bbox has zero width (MINLON == MAXLON)")
    return minlon, minlat, maxlon, maxlat


def _check_cell_size(cell_size: float) -> float:
    size = float(cell_size)
    if not math.isfinite(size) or size <= 0:
        raise CsmoeDataError(f"cell size must be a positive number of metres, got {cell_size}")
    return size


def _cell_ids(
    zone: int, north: bool, rows: NDArray[np.int64], cols: NDArray[np.int64]
) -> list[str]:
    prefix = f"{zone:02d}{'N' if north else 'S'}_"
    return [f"{prefix}{r:04d}_{c:04d}" for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]


def grid_cell_squares(
    utm_crs: ArrayLike, row: ArrayLike, col: ArrayLike, cell_size: ArrayLike
) -> tuple[NDArray[np.object_], list[str]]:
    """Rebuild grid cells as exact squares in their UTM CRS.

    Args:
        utm_crs: each cell's CRS (e.g. ``"EPSG:32633"``).
        row: ``floor(northing / size)`` of each cell.
        col: ``floor(easting / size)`` of each cell.
        cell_size: each cell's size in metres.

    Returns:
        ``(squares, crs_strings)``: shapely boxes in each row's CRS and the canonical CRS strings.

    Raises:
        CsmoeDataError: on a non-numeric row/col/size or an unknown CRS.
    """
    try:
        r = np.asarray(row, dtype=float)
        c = np.asarray(col, dtype=float)
        s = np.asarray(cell_size, dtype=float)
    except (TypeError, ValueError) as exc:
        raise CsmoeDataError(f"grid columns row/col/cell_size must be numbers: {exc}") from exc
    if not (
        np.isfinite(r).all() and np.isfinite(c).all() and np.isfinite(s).all() and (s > 0).all()
    ):
        raise CsmoeDataError("grid columns row/col/cell_size hold missing or non-positive values")
    squares = np.asarray(shapely.box(c * s, r * s, (c + 1) * s, (r + 1) * s), dtype=object)
    cache: dict[str, str] = {}
    crs_values = []
    for value in np.asarray(utm_crs, dtype=object).tolist():
        key = str(value)
        if key not in cache:
            cache[key] = crs_string(key)
        crs_values.append(cache[key])
    return clip_to_zones(squares, crs_values), crs_values


def _zone_meridians(
    epsg: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Latitudes and the UTM coordinates of the zone's west and east edges along them."""
    zone, hemisphere = epsg % 100, epsg // 100
    if hemisphere not in (326, 327) or not 1 <= zone <= 60:
        raise CsmoeDataError(f"EPSG:{epsg} is not a WGS 84 / UTM zone")
    west, east = -180.0 + 6.0 * (zone - 1), -180.0 + 6.0 * zone
    # the meridians are curves in UTM: a 0.02-degree step keeps the chords within ~5 mm of them
    steps = int(round(89.9 / _SEAM_STEP_DEG))
    lat = (
        np.linspace(0.0, 89.9, steps + 1)
        if hemisphere == 326
        else np.linspace(-89.9, 0.0, steps + 1)
    )
    t = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    wx, wy = t.transform(np.full(len(lat), west), lat)
    ex, ey = t.transform(np.full(len(lat), east), lat)
    return lat, np.column_stack([wx, wy]), np.column_stack([ex, ey])


@functools.lru_cache(maxsize=128)
def _zone_bands(epsg: int) -> tuple[NDArray[np.object_], shapely.STRtree]:
    """The zone's strip cut into 1-degree latitude bands (UTM coordinates), and their index.

    Cutting a cell against a small band is much cheaper than against the whole strip (thousands
    of vertices), and most cells meet one band. The parallels between bands are shared chords.
    """
    lat, w, e = _zone_meridians(epsg)
    per = int(round(1.0 / _SEAM_STEP_DEG))
    starts = list(range(0, len(lat) - 1, per))
    bands = []
    for a in starts:
        b = min(a + per, len(lat) - 1)
        ring = np.concatenate([w[a : b + 1], e[a : b + 1][::-1]])
        bands.append(shapely.Polygon(ring))
    arr = np.asarray(bands, dtype=object)
    shapely.prepare(arr)
    return arr, shapely.STRtree(arr)


@functools.lru_cache(maxsize=128)
def zone_region(epsg: int) -> shapely.Geometry:
    """The part of the globe a WGS 84 / UTM zone owns, in that zone's coordinates.

    That is its 6-degree strip in its hemisphere (latitudes up to 89.9 degrees).

    Raises:
        CsmoeDataError: if ``epsg`` is not a WGS 84 / UTM code (326zz / 327zz).
    """
    _, w, e = _zone_meridians(epsg)
    region = shapely.Polygon(np.concatenate([w, e[::-1]]))
    shapely.prepare(region)
    return region


def clip_to_zones(squares: NDArray[np.object_], crs_values: Sequence[str]) -> NDArray[np.object_]:
    """Cut grid cells to the strip of their UTM zone (cells inside it stay exact squares).

    Cells whose CRS is not a WGS 84 / UTM zone are left as they are.
    """
    out = np.asarray(squares, dtype=object).copy()
    codes = np.asarray([_utm_code(c) for c in crs_values], dtype=np.int64)
    for code in np.unique(codes[codes > 0]).tolist():
        sel = np.flatnonzero(codes == code)
        bands, tree = _zone_bands(int(code))
        cell_i, band_i = tree.query(out[sel], predicate="intersects")
        # a cell inside one band keeps its square; the others are cut against their bands
        inside = np.zeros(len(sel), dtype=bool)
        hit = shapely.contains_properly(bands[band_i], out[sel][cell_i])
        inside[cell_i[hit]] = True
        cut = ~inside
        if not cut.any():
            continue
        n_bands = np.bincount(cell_i, minlength=len(sel))
        one = cut & (n_bands == 1)
        if one.any():  # a cell meeting one band: cut against that small band
            pick = one[cell_i]
            out[sel[cell_i[pick]]] = shapely.intersection(
                out[sel][cell_i[pick]], bands[band_i[pick]]
            )
        many = np.flatnonzero(cut & (n_bands != 1))
        if len(many):  # larger cells: the strip clipped to the cell's rectangle
            region = zone_region(int(code))
            for k in many.tolist():
                out[sel[k]] = shapely.clip_by_rect(region, *out[sel[k]].bounds)
    return out


def _utm_code(crs: str) -> int:
    text = str(crs).upper()
    if text.startswith("EPSG:") and text[5:].isdigit():
        code = int(text[5:])
        if code // 100 in (326, 327) and 1 <= code % 100 <= 60:
            return code
    return 0


def _auto_densify(cell_size: float) -> int:
    # the lon/lat outline is for viewing; small cells are straight enough without extra vertices
    return 0 if cell_size <= 2000 else min(21, math.ceil(cell_size / 5000))


def _lon_intervals(minlon: float, maxlon: float) -> list[tuple[float, float]]:
    if minlon < maxlon:
        return [(minlon, maxlon)]
    return [(minlon, 180.0), (-180.0, maxlon)]


def _zone_parts(
    bbox: tuple[float, float, float, float],
) -> list[tuple[int, bool, tuple[float, float, float, float]]]:
    """(zone, north, lon/lat box) for each part of the bbox inside one zone and hemisphere."""
    minlon, minlat, maxlon, maxlat = bbox
    parts = []
    for lo, hi in _lon_intervals(minlon, maxlon):
        for zone in range(int(utm_zone(lo)), int(utm_zone(hi)) + 1):
            w = max(lo, -180.0 + 6.0 * (zone - 1))
            e = min(hi, -180.0 + 6.0 * zone)
            if e <= w:
                continue
            if maxlat > 0:
                parts.append((zone, True, (w, max(minlat, 0.0), e, maxlat)))
            if minlat < 0:
                parts.append((zone, False, (w, minlat, e, min(maxlat, 0.0))))
    # deterministic: by zone, north before south
    parts.sort(key=lambda p: (p[0], not p[1]))
    return parts


def _frame(
    ids: list[str],
    crs: list[str],
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    size: float,
    geoms: NDArray[np.object_],
) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "patch_id": pd.Series(ids, dtype=object),
            "utm_crs": pd.Series(crs, dtype=object),
            "row": np.asarray(rows, dtype=np.int64),
            "col": np.asarray(cols, dtype=np.int64),
            "cell_size": np.full(len(ids), size, dtype=np.float64),
        },
        geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"),
    )


def _candidates(
    region: shapely.Geometry, size: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Rows and cols of the cells that may overlap ``region``.

    Per row band, the cols under the band's part of the region (so the count stays close to the
    answer, whatever the region's shape).
    """
    minx, miny, maxx, maxy = region.bounds
    rows = np.arange(math.floor(miny / size), math.ceil(maxy / size), dtype=np.int64)
    bands = shapely.box(minx - size, rows * size, maxx + size, (rows + 1) * size)
    b = shapely.bounds(shapely.intersection(region, bands))
    ok = np.isfinite(b[:, 0])
    rows, b = rows[ok], b[ok]
    c0 = np.floor(b[:, 0] / size).astype(np.int64)
    c1 = np.maximum(np.ceil(b[:, 2] / size).astype(np.int64), c0 + 1)
    counts = c1 - c0
    rr = np.repeat(rows, counts)
    # cols: c0 of the row plus 0, 1, ... within the row
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    cc = np.repeat(c0, counts) + offsets
    return rr, cc


def make_grid(
    bbox: str | Sequence[float],
    cell_size: float,
    max_cells: int | None = None,
    densify_pts: int | None = None,
) -> gpd.GeoDataFrame:
    """Lay square UTM cells over a lon/lat bbox.

    Args:
        bbox: ``(minlon, minlat, maxlon, maxlat)`` or its comma-separated text; ``minlon > maxlon``
            crosses the antimeridian.
        cell_size: the cells' side in metres.
        max_cells: raise instead of producing more cells than this (None: no limit).
        densify_pts: extra vertices per edge of the lon/lat outlines (None: automatic, none for
            cells up to 2 km).

    Returns:
        A GeoDataFrame in EPSG:4326 with ``patch_id``, ``utm_crs``, ``row``, ``col``,
        ``cell_size`` and the outline geometry, ordered by zone, hemisphere (N first), row, col.

    Raises:
        CsmoeDataError: on a bad bbox or cell size, or when ``max_cells`` would be exceeded.
    """
    box = parse_bbox(bbox)
    size = _check_cell_size(cell_size)
    dens = _auto_densify(size) if densify_pts is None else int(densify_pts)
    frames: list[gpd.GeoDataFrame] = []
    total = 0
    for zone, north, (w, s, e, n) in _zone_parts(box):
        epsg = utm_epsg(zone, north)
        region_ll = shapely.segmentize(shapely.box(w, s, e, n), _REGION_STEP_DEG)
        region = transform_geometries([region_ll], "EPSG:4326", f"EPSG:{epsg}", densify_pts=0)[0]
        if region is None or region.is_empty:
            continue
        # the cells cover the region, so area / cell area is a lower bound of their number:
        # checked before the candidates are allocated (a continent at 10 m is billions of cells)
        if max_cells is not None and total + region.area / size**2 > max_cells:
            raise CsmoeDataError(
                f"the grid would have more than --max-cells {max_cells:,} cells (at least "
                f"{total + region.area / size**2:,.0f} from the bbox's area); use a smaller bbox "
                "or a larger cell size"
            )
        rr, cc = _candidates(region, size)
        if max_cells is not None and total + len(rr) > max_cells + max_cells // 10 + 1000:
            raise CsmoeDataError(
                f"the grid would have more than --max-cells {max_cells:,} cells "
                f"(about {total + len(rr):,}); use a smaller bbox or a larger cell size"
            )
        squares = shapely.box(cc * size, rr * size, (cc + 1) * size, (rr + 1) * size)
        shapely.prepare(region)
        # overlapping the region's interior, not merely touching its edge
        keep = shapely.intersects(region, squares) & ~shapely.touches(region, squares)
        if not keep.any():
            continue
        rr, cc = rr[keep], cc[keep]
        squares = clip_to_zones(squares[keep], [f"EPSG:{epsg}"] * int(keep.sum()))
        total += len(rr)
        if max_cells is not None and total > max_cells:
            raise CsmoeDataError(
                f"the grid has more than --max-cells {max_cells:,} cells; use a smaller bbox or a larger cell size"
            )
        outlines = transform_geometries(squares, f"EPSG:{epsg}", "EPSG:4326", densify_pts=dens)
        frames.append(
            _frame(
                _cell_ids(zone, north, rr, cc), [f"EPSG:{epsg}"] * len(rr), rr, cc, size, outlines
            )
        )
    if not frames:
        raise CsmoeDataError(f"no grid cell overlaps bbox {box}")
    return gpd.GeoDataFrame(
        pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326"
    )


def cells_at_points(
    lon: ArrayLike, lat: ArrayLike, cell_size: float, densify_pts: int | None = None
) -> gpd.GeoDataFrame:
    """The grid cells (same lattice and names as :func:`make_grid`) holding the given points.

    Useful to plan patches at chosen places (e.g. random points for a global pool). A cell holding
    several points appears once, at its first point's position.

    Args:
        lon: longitudes in degrees.
        lat: latitudes in degrees.
        cell_size: the cells' side in metres.
        densify_pts: extra vertices per edge of the lon/lat outlines (None: automatic).

    Returns:
        A GeoDataFrame like :func:`make_grid`'s.

    Raises:
        CsmoeDataError: on bad coordinates or cell size.
    """
    size = _check_cell_size(cell_size)
    lon_arr = np.asarray(lon, dtype=float).ravel()
    lat_arr = np.asarray(lat, dtype=float).ravel()
    if lon_arr.shape != lat_arr.shape:
        raise CsmoeDataError(f"{lon_arr.size} longitudes but {lat_arr.size} latitudes")
    if not len(lon_arr):
        raise CsmoeDataError("no points given")
    if not (np.isfinite(lon_arr).all() and np.isfinite(lat_arr).all()):
        raise CsmoeDataError("points must have finite coordinates")
    if (np.abs(lat_arr) > 90).any() or (np.abs(lon_arr) > 180).any():
        raise CsmoeDataError("points must lie within lon [-180, 180] and lat [-90, 90]")
    dens = _auto_densify(size) if densify_pts is None else int(densify_pts)
    zones = utm_zone(lon_arr)
    north = lat_arr >= 0
    epsg = np.where(north, 32600, 32700) + zones
    rows = np.empty(len(lon_arr), dtype=np.int64)
    cols = np.empty(len(lon_arr), dtype=np.int64)
    for code in np.unique(epsg):
        sel = epsg == code
        t = pyproj.Transformer.from_crs(4326, int(code), always_xy=True)
        x, y = t.transform(lon_arr[sel], lat_arr[sel])
        cols[sel] = np.floor(np.asarray(x) / size).astype(np.int64)
        rows[sel] = np.floor(np.asarray(y) / size).astype(np.int64)
    key = pd.DataFrame({"epsg": epsg, "row": rows, "col": cols})
    first = ~key.duplicated().to_numpy()
    epsg, rows, cols, zones, north = (
        epsg[first],
        rows[first],
        cols[first],
        zones[first],
        north[first],
    )
    ids = [
        f"{z:02d}{'N' if h else 'S'}_{r:04d}_{c:04d}"
        for z, h, r, c in zip(
            zones.tolist(), north.tolist(), rows.tolist(), cols.tolist(), strict=True
        )
    ]
    crs = [f"EPSG:{e}" for e in epsg.tolist()]
    squares, _ = grid_cell_squares(crs, rows, cols, np.full(len(rows), size))
    outlines = np.empty(len(rows), dtype=object)
    for code in np.unique(epsg):
        sel = np.flatnonzero(epsg == code)
        outlines[sel] = transform_geometries(
            squares[sel], f"EPSG:{code}", "EPSG:4326", densify_pts=dens
        )
    return _frame(ids, crs, rows, cols, size, outlines)


def write_grid(grid: gpd.GeoDataFrame, path: str | Path, overwrite: bool = False) -> Path:
    """Write a grid atomically; the format follows the suffix (.parquet, .gpkg, .geojson, .fgb).

    Raises:
        CsmoeDataError: on an unsupported suffix, or an existing file without ``overwrite``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _DRIVERS:
        raise CsmoeDataError(
            f"unsupported grid output {path.name!r}; use one of {', '.join(sorted(_DRIVERS))} "
            "(Shapefile is not offered: it is several files and cannot be written atomically)"
        )
    driver = _DRIVERS[suffix]
    with atomic_output(path, overwrite=overwrite) as tmp:
        # GDAL drivers pick behaviour from the suffix (FlatGeobuf makes a folder otherwise)
        staged = tmp.with_name(tmp.name + suffix)
        try:
            if driver is None:
                grid.to_parquet(
                    staged, compression="zstd", schema_version="1.1.0", write_covering_bbox=True
                )
            else:
                # no FlatGeobuf spatial index: it would reorder the cells
                options = {"SPATIAL_INDEX": "NO"} if driver == "FlatGeobuf" else {}
                grid.to_file(
                    staged, driver=driver, layer=path.stem if driver == "GPKG" else None, **options
                )
            os.replace(staged, tmp)
        finally:
            if staged.exists():
                staged.unlink()
    return path
