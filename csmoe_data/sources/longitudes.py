"""Footprints brought into a geographic raster's own longitude range (0..360 maps and others).

Footprints reach a geographic raster with longitudes in ``[-180, 180]`` (split at the
antimeridian by :func:`csmoe_data.geometry.transform_geometries`). A climate map stored over
``0 .. 360`` then sees nothing west of Greenwich. Any geographic raster spans at most one turn,
so it lies inside the window ``[west, west + 360)`` with ``west`` its left edge: every
longitude of the globe has exactly one representative there. :func:`fit_longitudes` moves
each footprint part into that window, cutting parts that straddle its seam (``west`` itself)
into two; a footprint at -0.1 degrees and one at 359.9 degrees then read the same pixels.

Rasters inside ``[-180, 180]`` need nothing (:func:`raster_lon_window` returns None), so the
common case costs nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["fit_longitudes", "raster_lon_window"]

#: float noise at the edges of a raster or a footprint, degrees
_SNAP = 1e-9


def raster_lon_window(left: float, right: float) -> float | None:
    """West edge of the longitude window of a geographic raster, or None for ``[-180, 180]``.

    Args:
        left: the raster's west edge (degrees).
        right: its east edge.
    """
    if left >= -180.0 - _SNAP and right <= 180.0 + _SNAP:
        return None
    return float(left)


def _fit_one(geom: Any, west: float) -> Any:
    from csmoe_data.geometry import _polygonal_or_same_dim

    minx, _, maxx, _ = geom.bounds
    k_lo = int(np.floor((minx - west) / 360.0))
    k_hi = int(np.floor((maxx - west - _SNAP) / 360.0))
    if k_lo == k_hi:
        if k_lo == 0:
            return geom
        return shapely.transform(geom, lambda c, k=k_lo: c - np.array([360.0 * k, 0.0]))
    parts = []
    for k in range(k_lo, k_hi + 1):
        lo = west + 360.0 * k
        piece = shapely.intersection(geom, shapely.box(lo, -1e9, lo + 360.0, 1e9))
        if piece is None or piece.is_empty:
            continue
        if k:
            piece = shapely.transform(piece, lambda c, k=k: c - np.array([360.0 * k, 0.0]))
        parts.append(piece)
    return _polygonal_or_same_dim(parts, int(shapely.get_dimensions(geom)))


def fit_longitudes(geoms: NDArray[np.object_], west: float | None) -> NDArray[np.object_]:
    """Move lon/lat footprints into the window ``[west, west + 360)`` (None: unchanged).

    Footprints are first rejoined across the antimeridian (their parts made continuous), so a
    footprint split at 180 degrees comes out whole on a 0..360 raster.

    Args:
        geoms: shapely geometries in the raster's geographic CRS.
        west: the window's west edge (:func:`raster_lon_window`).

    Returns:
        A new object array; None and empty geometries pass through.
    """
    if west is None:
        return geoms
    from csmoe_data.geometry import as_geometry_array, unwrap_longitudes

    arr = unwrap_longitudes(as_geometry_array(geoms))
    out = arr.copy()
    valid = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    if not valid.any():
        return out
    idx = np.flatnonzero(valid)
    b = shapely.bounds(arr[idx])
    k_lo = np.floor((b[:, 0] - west) / 360.0)
    k_hi = np.floor((b[:, 2] - west - _SNAP) / 360.0)
    # whole footprints inside one window: one shift for all of them
    simple = k_lo == k_hi
    for k in np.unique(k_lo[simple & (k_lo != 0)]).tolist():
        sel = idx[simple & (k_lo == k)]
        out[sel] = shapely.transform(arr[sel], lambda c, k=k: c - np.array([360.0 * k, 0.0]))
    for i in idx[~simple].tolist():
        out[i] = _fit_one(arr[i], west)
    return out
