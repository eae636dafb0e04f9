"""Patch footprints from any source, each in its native CRS.

``load_footprints(source)`` accepts a vector file (GeoParquet, GeoPackage, GeoJSON, Shapefile,
FlatGeobuf, ...), a folder of GeoTIFF patches, a BigEarthNet root (``S2/`` with optional ``S1/``),
a ``csmoe-data grid`` file, or ``sample:bigearthnet``; see :mod:`csmoe_data.footprints.load`.
"""

from csmoe_data.footprints.core import Footprints
from csmoe_data.footprints.grid import cells_at_points, make_grid, write_grid
from csmoe_data.footprints.load import load_footprints

__all__ = ["Footprints", "cells_at_points", "load_footprints", "make_grid", "write_grid"]
