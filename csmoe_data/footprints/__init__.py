"""Patch footprints from any source, each in its native CRS.

``load_footprints(source)`` accepts a vector file (GeoParquet, GeoPackage, GeoJSON, Shapefile,
FlatGeobuf, ...), a folder of GeoTIFF patches, a BigEarthNet root (``S2/`` with optional ``S1/``),
a ``csmoe-data grid`` file, or ``sample:bigearthnet``; see :mod:`csmoe_data.footprints.load`.

The names below are imported on first use, so that ``csmoe_data.footprints.options`` (what the
CLI reads its defaults from) can be imported without GDAL or geopandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csmoe_common.lazy import lazy_getattr

if TYPE_CHECKING:
    from csmoe_data.footprints.core import Footprints
    from csmoe_data.footprints.grid import cells_at_points, make_grid, write_grid
    from csmoe_data.footprints.load import load_footprints

_EXPORTS: dict[str, str] = {
    "Footprints": "core",
    "cells_at_points": "grid",
    "make_grid": "grid",
    "write_grid": "grid",
    "load_footprints": "load",
}

__all__ = [
    "Footprints",
    "cells_at_points",
    "load_footprints",
    "make_grid",
    "write_grid",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
