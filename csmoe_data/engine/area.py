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

__all__ = ["EARTH_RADIUS_M", "row_weights", "spherical_area"]

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
