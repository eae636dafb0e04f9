"""True-area pixel weights for geographic (lon/lat) rasters, on the sphere.

On a lon/lat raster a pixel near the pole covers far less ground than one at the equator, so
counting pixels (or their coverage fractions) over a 100 km tile at 60 degrees of latitude
gives the northern rows too much weight. Here every pixel is weighted by its area on a sphere:
the cell between latitudes ``phi1 < phi2`` and ``dlambda`` radians of longitude has area
``R**2 * dlambda * (sin(phi2) - sin(phi1))``, the formula exactextract uses for
``coverage_weight=area_spherical_m2`` (coverage fraction times the cell's spherical area), so
fractions agree with ``frac(coverage_weight=area_spherical_m2)``. ``R`` is the WGS 84 equatorial
radius (6378137 m, exactextract's); the radius cancels in fractions. Projected rasters keep
planar weights (every pixel equal).

A footprint's own area on the same sphere (the denominator of the valid fraction) is its
planar area in the cylindrical equal-area coordinates ``(R * lambda, R * sin(phi))``, in which
the spherical cell areas above are exactly planar areas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["EARTH_RADIUS_M", "SphericalRows", "row_weights", "row_weights_at", "spherical_area"]

#: sphere radius of the area weights: the WGS 84 equatorial radius, as exactextract uses
EARTH_RADIUS_M = 6378137.0


def row_weights(
    transform: tuple[float, float, float, float, float, float], row0: int, row1: int
) -> NDArray[np.float64]:
    """Spherical area (m^2) of one pixel in each row ``[row0, row1)`` of a lon/lat raster.

    Latitudes are clipped to [-90, 90] (a row beyond the pole has no area).

    Args:
        transform: the raster's affine ``(a, b, c, d, e, f)`` (no rotation), in degrees.
        row0: first row.
        row1: one past the last row.
    """
    a, _, _, _, e, f = transform
    edges = f + e * np.arange(row0, row1 + 1, dtype=np.float64)
    s = np.sin(np.radians(np.clip(edges, -90.0, 90.0)))
    return EARTH_RADIUS_M**2 * np.radians(abs(a)) * np.abs(np.diff(s))


def spherical_area(geoms: Any) -> NDArray[np.float64]:
    """Area (m^2) of lon/lat polygons on the sphere of :data:`EARTH_RADIUS_M`.

    Exact for edges along meridians and parallels (pixel and tile edges); other edges are
    taken as straight in lon/lat, as the coverage of pixels is (densify footprints first).
    """
    arr = np.atleast_1d(np.asarray(geoms, dtype=object))

    def to_cea(c: NDArray[np.float64]) -> NDArray[np.float64]:
        lat = np.radians(np.clip(c[:, 1], -90.0, 90.0))
        return np.column_stack([EARTH_RADIUS_M * np.radians(c[:, 0]), EARTH_RADIUS_M * np.sin(lat)])

    return np.asarray(shapely.area(shapely.transform(arr, to_cea)), dtype=np.float64)


def row_weights_at(
    transform: tuple[float, float, float, float, float, float], rows: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Spherical area (m^2) of one pixel in each of the given rows (any order, repeats)."""
    a, _, _, _, e, f = transform
    r = np.asarray(rows, dtype=np.float64)
    top = np.sin(np.radians(np.clip(f + e * r, -90.0, 90.0)))
    bottom = np.sin(np.radians(np.clip(f + e * (r + 1.0), -90.0, 90.0)))
    return EARTH_RADIUS_M**2 * np.radians(abs(a)) * np.abs(top - bottom)


class SphericalRows:
    """Pixel weights of a lon/lat raster's rows relative to each footprint's reference row.

    Each footprint's areas are expressed in pixels of its reference row (the row of its
    bounding box's middle, clamped into the raster), so that they stay in pixel units (as the
    planar path's, and the unknown-code tallies) while rows nearer the pole count less.

    A footprint's total area is weighted the same way, row by row: the area of a polygon inside
    the band of pixel row ``r`` is the sum of ``x dy`` over its boundary pieces in that row
    (Green's theorem; the band's own edges have ``dy = 0``), so the total is
    ``sum(x_mid * dy * weight(row))`` over the pieces the coverage already cut, and a footprint
    lying wholly on valid pixels has a valid fraction of exactly 1.

    Args:
        transform: the raster's affine.
        height: its rows.
        px_geoms: the footprints in pixel space (None allowed).
        row_lo: first row any window reads.
        row_hi: one past the last.
    """

    def __init__(
        self,
        transform: tuple[float, float, float, float, float, float],
        height: int,
        px_geoms: NDArray[np.object_],
        row_lo: int,
        row_hi: int,
    ) -> None:
        fb = shapely.bounds(px_geoms)
        mid = np.nan_to_num((fb[:, 1] + fb[:, 3]) / 2.0, nan=0.0)
        ref = np.clip(np.floor(mid), 0, max(height - 1, 0)).astype(np.int64)
        self.ref_weight = row_weights_at(transform, ref)
        self.ref_weight[self.ref_weight <= 0] = 1.0  # a row on the pole: keep the ratios finite
        self.row_lo = int(row_lo)
        self.transform = transform
        self.weights = row_weights(transform, int(row_lo), max(int(row_hi), int(row_lo)))

    def windows(
        self, footprints: NDArray[np.int64], rows0: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
        """Row weights of windows starting at ``rows0``, as ``(weights, offsets, scales)``.

        The rows of window ``i`` weigh ``weights[offsets[i]:offsets[i] + h] * scales[i]``:
        one shared array, so no per-window array is made.
        """
        offsets = np.asarray(rows0, dtype=np.int64) - self.row_lo
        return self.weights, offsets, 1.0 / self.ref_weight[footprints]

    def at_rows(
        self, rows: NDArray[np.int64], footprints: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Weights of any rows (also beyond the raster) for the given footprints, elementwise."""
        lo = rows - self.row_lo
        inside = (lo >= 0) & (lo < len(self.weights))
        w = np.empty(len(rows))
        w[inside] = self.weights[lo[inside]]
        if not inside.all():
            w[~inside] = row_weights_at(self.transform, rows[~inside])
        return w / self.ref_weight[footprints]

    def outline_total(
        self, parts_lonlat: NDArray[np.object_], owner: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Spherical area of polygon parts in pixels of their footprint's reference row.

        Used for parts no window reads (off the raster), where the boundary pieces are not cut.
        """
        return spherical_area(parts_lonlat) / self.ref_weight[owner]
