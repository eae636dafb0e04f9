"""Build descriptor manifests: footprints + land-cover and climate rasters -> GeoParquet.

Entry points:
    :func:`build_manifest`: describe footprints (:class:`BuildInputs`, :class:`ExecutionOptions`,
        optional :class:`~csmoe_data.sampling.SamplingOptions`) and write a manifest.
    :func:`sample_pool`: select rows of an existing manifest into a new one.

Stages (one module each): :mod:`~csmoe_data.builder.load` (validate rasters and legends, load
footprints), :mod:`~csmoe_data.builder.describe` (chunks through :mod:`~csmoe_data.builder.executors`:
this process, a process pool or Dask), :mod:`~csmoe_data.builder.assemble` (rows in input order),
:mod:`~csmoe_data.builder.metadata` (the ``csmoe`` document); :mod:`~csmoe_data.builder.pipeline`
runs them. The output is byte-identical whatever the workers, chunk size or executor.

The names below are imported on first use, so that ``csmoe_data.builder.options`` (what the CLI
reads its defaults from) can be imported without GDAL, geopandas or scipy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csmoe_common.lazy import lazy_getattr

if TYPE_CHECKING:
    from csmoe_data.builder.assemble import IMAGERY_COLUMNS, project_root, relative_paths
    from csmoe_data.builder.describe import COMPILED_MIN_FOOTPRINTS, describe_chunk
    from csmoe_data.builder.options import (
        DEFAULT_CHUNK_SIZE,
        DENSIFY_PTS,
        BuildInputs,
        BuildResult,
        ExecutionOptions,
    )
    from csmoe_data.builder.pipeline import build_manifest
    from csmoe_data.builder.sample import sample_pool, sampling_requested

_EXPORTS: dict[str, str] = {
    "IMAGERY_COLUMNS": "assemble",
    "project_root": "assemble",
    "relative_paths": "assemble",
    "COMPILED_MIN_FOOTPRINTS": "describe",
    "describe_chunk": "describe",
    "DEFAULT_CHUNK_SIZE": "options",
    "DENSIFY_PTS": "options",
    "BuildInputs": "options",
    "BuildResult": "options",
    "ExecutionOptions": "options",
    "build_manifest": "pipeline",
    "sample_pool": "sample",
    "sampling_requested": "sample",
}

__all__ = [
    "BuildInputs",
    "BuildResult",
    "COMPILED_MIN_FOOTPRINTS",
    "DEFAULT_CHUNK_SIZE",
    "DENSIFY_PTS",
    "ExecutionOptions",
    "IMAGERY_COLUMNS",
    "build_manifest",
    "describe_chunk",
    "project_root",
    "relative_paths",
    "sample_pool",
    "sampling_requested",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
