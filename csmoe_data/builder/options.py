"""Typed options and result of a manifest build (the CLI reads its defaults from these classes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csmoe_common import manifest as schema
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.options import MajorTomOptions

#: footprints per task; bounded memory per worker, enough work to amortise the task overhead
DEFAULT_CHUNK_SIZE = 2000
#: extra vertices per footprint edge before reprojection
DENSIFY_PTS = 21
#: default ``--raster-memory`` (MB per worker; the same as
#: :data:`csmoe_data.engine.io.DEFAULT_RASTER_MEMORY_MB`, not imported to keep this module light)
DEFAULT_RASTER_MEMORY_MB = 512


@dataclass(frozen=True)
class BuildInputs:
    """What to describe: the footprints and the categorical rasters with their legends.

    Attributes:
        footprints: vector file, folder of patch rasters, BigEarthNet root or ``sample:bigearthnet``.
        landcover: land-cover raster (path or ``sample:modis-igbp``); optional if ``climate`` is given.
        landcover_legend: built-in legend name or a JSON/CSV legend file.
        climate: Köppen-Geiger raster (path or ``sample:koppen-rubel``).
        climate_legend: ``koppen-rubel``, ``koppen-beck`` or a legend file.
        id_column: footprint id column of a vector source.
        labels_column: optional column of a vector source holding labels.
        densify_pts: extra vertices per footprint edge before reprojection (recorded in the
            manifest's parameters).
        landcover_band: band of a multi-band land-cover raster (1-based index or description).
        landcover_var: data variable of a NetCDF/Zarr land-cover map.
        landcover_crs: CRS of a land-cover raster that carries none (overrides the file's).
        climate_band: band of a multi-band climate raster.
        climate_var: data variable of a NetCDF/Zarr climate map.
        climate_crs: CRS of a climate raster that carries none (overrides the file's).
        layer: layer of a multi-layer footprint file.
        crs: CRS of a footprint source that carries none (CSV WKT, files without CRS).
        point_size: side in metres of squares made around point footprints.
        dissolve_ids: merge footprint rows sharing an id into one footprint.
        majortom: pairing, imagery root and tiling of a Major TOM metadata source.

    ``landcover`` and ``climate`` each take a file, a folder (every raster below it), a glob, a
    GDAL path or URL, or a sequence of those (tiles of one product, possibly in several CRSs).
    """

    footprints: str | Path
    landcover: str | Path | Sequence[str | Path] | None = None
    landcover_legend: str | Path | None = None
    climate: str | Path | Sequence[str | Path] | None = None
    climate_legend: str | Path | None = None
    id_column: str = schema.PATCH_ID
    labels_column: str | None = None
    densify_pts: int = DENSIFY_PTS
    landcover_band: str | int | None = None
    landcover_var: str | None = None
    landcover_crs: str | None = None
    climate_band: str | int | None = None
    climate_var: str | None = None
    climate_crs: str | None = None
    layer: str | None = None
    crs: str | None = None
    point_size: float | None = None
    dissolve_ids: bool = False
    majortom: MajorTomOptions = field(default_factory=MajorTomOptions)


@dataclass(frozen=True)
class ExecutionOptions:
    """How to compute descriptors; nothing here changes a byte of the output.

    Attributes:
        workers: processes (1 = in this process).
        dask_scheduler: address of a Dask distributed scheduler (``tcp://host:8786``).
        chunk_size: footprints per task.
        progress: progress bar; None: when stderr is a terminal.
        raster_memory_mb: memory per worker (MB) for rasters decoded whole (small or coarse
            rasters, smallest first); larger rasters are read by windows. 0: always windows.
    """

    workers: int = 1
    dask_scheduler: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    progress: bool | None = None
    raster_memory_mb: float = DEFAULT_RASTER_MEMORY_MB


def check_execution(execution: ExecutionOptions) -> ExecutionOptions:
    """Return ``execution`` after checking its numbers.

    Raises:
        CsmoeDataError: ``workers`` or ``chunk_size`` below 1.
    """
    if execution.workers < 1:
        raise CsmoeDataError(f"--workers must be >= 1, not {execution.workers}")
    if execution.chunk_size < 1:
        raise CsmoeDataError(f"chunk size must be >= 1, not {execution.chunk_size}")
    if not execution.raster_memory_mb >= 0:
        raise CsmoeDataError(f"--raster-memory must be >= 0 MB, not {execution.raster_memory_mb}")
    return execution


@dataclass
class BuildResult:
    """What :func:`~csmoe_data.builder.build_manifest` or :func:`~csmoe_data.builder.sample_pool` did.

    Attributes:
        path: the written manifest.
        rows: rows written.
        pool_rows: rows before sampling (equals ``rows`` without sampling).
        metadata: the ``csmoe`` metadata written.
        valid_frac: mean ``lc_valid_frac`` / ``kg_valid_frac`` of the written rows.
        unknown_codes: kind -> {raster value: covered pixel area} for values the legends lack.
        repaired: invalid footprint geometries repaired.
        dropped: footprints dropped while loading.
        notes: remarks from loading.
        warnings: what probably needs a look (a legend that does not fit the raster's values,
            an assumed CRS), also recorded in the metadata.
    """

    path: Path
    rows: int
    pool_rows: int
    metadata: dict[str, Any]
    valid_frac: dict[str, float] = field(default_factory=dict)
    unknown_codes: dict[str, dict[float, float]] = field(default_factory=dict)
    repaired: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
