"""Tests of csmoe_data.sources.tiles (spatial index over tiles of several CRSs)."""

from __future__ import annotations

import numpy as np
import pyproj
import shapely

from csmoe_data.sources.tiles import TileIndex


def test_touching_finds_only_the_tiles_a_footprint_meets() -> None:
    index = TileIndex.build(
        ["EPSG:4326", "EPSG:4326", "EPSG:32633"],
        [(0, 0, 1, 1), (1, 0, 2, 1), (400000, 5300000, 500000, 5400000)],
    )
    fps = np.array(
        [
            shapely.box(0.2, 0.2, 0.4, 0.4),
            shapely.box(0.9, 0.2, 1.1, 0.4),
            shapely.box(14, 48, 14.1, 48.1),
            None,
        ],
        dtype=object,
    )
    touching = index.touching(fps)
    assert touching[0].tolist() == [0, 1] and touching[1].tolist() == [1]
    assert touching[2].tolist() == [2]
    assert index.domains == [None, None, None]  # neighbours sharing an edge do not overlap


def test_overlapping_tiles_get_disjoint_domains() -> None:
    # two UTM zones overlapping along their seam near 12E
    t32 = pyproj.Transformer.from_crs(4326, 32632, always_xy=True)
    t33 = pyproj.Transformer.from_crs(4326, 32633, always_xy=True)
    x0, y0 = t32.transform(11.0, 47.0)
    x1, y1 = t32.transform(12.6, 48.0)
    u0, v0 = t33.transform(11.4, 47.0)
    u1, v1 = t33.transform(13.0, 48.0)
    index = TileIndex.build(["EPSG:32632", "EPSG:32633"], [(x0, y0, x1, y1), (u0, v0, u1, v1)])
    assert index.domains[0] is None and index.domains[1] is not None
    seam = np.array([shapely.Point(t33.transform(12.2, 47.5)).buffer(500)], dtype=object)
    clipped = index.clip(1, seam)
    assert shapely.area(clipped[0]) < 1e-6 * shapely.area(
        seam[0]
    )  # inside tile 0: not counted again
    east = np.array([shapely.Point(t33.transform(12.9, 47.5)).buffer(500)], dtype=object)
    assert abs(shapely.area(index.clip(1, east)[0]) - shapely.area(east[0])) < 1e-6
    far = np.array([shapely.Point(t33.transform(14.0, 47.5)).buffer(500)], dtype=object)
    assert shapely.is_empty(index.clip(1, far)[0])  # outside the tile: nothing left
    inner = np.array([shapely.Point(t32.transform(11.5, 47.5)).buffer(500)], dtype=object)
    assert index.clip(0, inner)[0] is inner[0]  # well inside: untouched


def test_lonlat_tiles_in_0_360() -> None:
    index = TileIndex.build(["EPSG:4326"], [(0.0, -90.0, 360.0, 90.0)])
    west = np.array([shapely.box(-10, 0, -9, 1)], dtype=object)
    assert index.touching(west)[0].tolist() == [0]
