"""Tests of csmoe_data.sources.longitudes (0..360 rasters)."""

from __future__ import annotations

import numpy as np
import shapely

from csmoe_data.sources.longitudes import fit_longitudes, raster_lon_window


def test_window_only_for_rasters_beyond_180() -> None:
    assert raster_lon_window(-180.0, 180.0) is None
    assert raster_lon_window(0.0, 360.0) == 0.0
    assert raster_lon_window(-180.5, 179.5) == -180.5


def test_footprints_move_into_0_360_and_straddlers_are_cut() -> None:
    geoms = np.array(
        [
            shapely.box(-10.0, 0.0, -9.0, 1.0),  # west: moves to 350..351
            shapely.box(10.0, 0.0, 11.0, 1.0),  # east: unchanged
            shapely.box(-0.1, 0.0, 0.1, 1.0),  # straddles the seam at 0
            shapely.MultiPolygon(  # split at the antimeridian: rejoined at 180
                [shapely.box(179.5, 0, 180, 1), shapely.box(-180, 0, -179.5, 1)]
            ),
            None,
        ],
        dtype=object,
    )
    out = fit_longitudes(geoms, 0.0)
    assert out[0].equals(shapely.box(350.0, 0.0, 351.0, 1.0))
    assert out[1].equals(geoms[1])
    parts = sorted(shapely.get_parts(out[2]), key=lambda p: p.bounds[0])
    assert [tuple(np.round(p.bounds, 9)) for p in parts] == [
        (0.0, 0.0, 0.1, 1.0),
        (359.9, 0.0, 360.0, 1.0),
    ]
    assert abs(shapely.area(out[3]) - 1.0) < 1e-12 and out[3].bounds[0] >= 179.5
    assert out[3].bounds[2] <= 180.5 + 1e-9
    assert out[4] is None
    assert fit_longitudes(geoms, None) is geoms
