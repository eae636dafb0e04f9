"""Tests of csmoe_data.engine.area (spherical pixel areas)."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import shapely

from csmoe_data.engine.area import EARTH_RADIUS_M, row_weights, spherical_area


def test_rows_sum_to_the_sphere() -> None:
    w = row_weights((1.0, 0.0, -180.0, 0.0, -1.0, 90.0), 0, 180)
    assert math.isclose(w.sum() * 360, 4 * math.pi * EARTH_RADIUS_M**2, rel_tol=1e-12)
    assert w[0] < w[89] and math.isclose(w[0], w[-1])  # poles small, symmetric


def test_cells_and_polygons_agree() -> None:
    w = row_weights((0.5, 0.0, 0.0, 0.0, -0.5, 60.0), 0, 2)
    cells = [shapely.box(0, 59.5, 0.5, 60.0), shapely.box(0, 59.0, 0.5, 59.5)]
    assert np.allclose(spherical_area(cells), w, rtol=1e-12)
    # close to the ellipsoid's geodesic area (within the sphere/ellipsoid difference)
    geod = pyproj.Geod(ellps="WGS84")
    area, _ = geod.polygon_area_perimeter(*cells[0].exterior.xy)
    assert abs(abs(area) / w[0] - 1) < 0.01
