"""The descriptor engine: raster I/O, exact coverage geometry and compiled kernels.

Modules:
    io: :class:`RasterInfo`, :func:`inspect_raster`, per-process open datasets, windowed reads.
    coverage: pixel space, boundary pieces and exact per-pixel coverage of polygons.
    kernels: the numba kernels (with pure-Python twins) and :func:`jit_kernels`.

:mod:`csmoe_data.descriptors` turns coverage and pixel values into class fractions.
"""

from csmoe_data.engine.coverage import (
    Pieces,
    boundary_pieces,
    coverage,
    coverage_batch,
    coverage_raw,
    coverage_runs,
    to_pixel_space,
)
from csmoe_data.engine.io import (
    RasterInfo,
    close_datasets,
    inspect_raster,
    open_dataset,
    read_window,
)
from csmoe_data.engine.kernels import jit_kernels

__all__ = [
    "Pieces",
    "RasterInfo",
    "boundary_pieces",
    "close_datasets",
    "coverage",
    "coverage_batch",
    "coverage_raw",
    "coverage_runs",
    "inspect_raster",
    "jit_kernels",
    "open_dataset",
    "read_window",
    "to_pixel_space",
]
