"""Stage 2 of a build: describe the footprints in chunks, back in input order.

Footprints are processed in a spatially sorted order for raster locality; the results go back
to the input order and nothing that depends on the executor, the number of workers or the chunk
size enters them, so the output is byte-identical however it is computed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from csmoe_common import manifest as schema
from csmoe_common.progress import progress_bar
from csmoe_data.builder.executors import Task, TaskRunner
from csmoe_data.builder.load import RasterSpec
from csmoe_data.builder.options import DENSIFY_PTS, ExecutionOptions, check_execution
from csmoe_data.descriptors import ClassAreas, DescriptorArrays
from csmoe_data.legends import Legend

#: jobs with at least this many footprints use the compiled kernels (numba's start-up, about
#: 0.5 s per process, costs more than it saves below); decided per job, so that every worker
#: of one job takes the same path
COMPILED_MIN_FOOTPRINTS = 6000


class KindResult(TypedDict):
    """The descriptors of one raster kind for one chunk."""

    arrays: DescriptorArrays
    unknown: dict[float, float]
    unknown_rows: int
    value_area: dict[float, float]


def _value_area(ca: ClassAreas, legend: Legend) -> dict[float, float]:
    """Raster value -> area under the chunk's footprints (classes and unknown values).

    Areas are made comparable across footprints (square metres where known).
    """
    unit = ca.unit_m2 if ca.unit_m2 is not None else np.ones(len(ca.area))
    per_class = (ca.area * unit[:, None]).sum(axis=0) if len(ca.area) else np.zeros(0)
    out: dict[float, float] = {
        float(v): float(a)
        for v, a in zip(legend.values.tolist(), per_class.tolist(), strict=True)
        if a > 0
    }
    scale = float(np.median(unit)) if len(unit) else 1.0
    for v, a in ca.unknown.items():
        out[float(v)] = out.get(float(v), 0.0) + a * scale
    return out


class ChunkResult(TypedDict):
    """What :func:`describe_chunk` returns for one chunk."""

    geometry: NDArray[np.object_]
    bounds: NDArray[np.float64]
    type_codes: NDArray[np.int8]
    kinds: dict[str, KindResult]


def geometry_type_codes(geoms: NDArray[np.object_]) -> NDArray[np.int8]:
    """The type id (shapely's) of each geometry, plus 8 where it has Z (-1 where it is missing).

    The codes GeoParquet's ``geometry_types`` are named from (``"Polygon"``, ``"Polygon Z"``,
    ...; see :data:`csmoe_data.builder.write.GEOMETRY_TYPE_NAMES`).
    """
    import shapely

    codes = shapely.get_type_id(geoms).astype(np.int8)
    codes[shapely.has_z(geoms)] += 8
    return codes


@dataclass
class Described:
    """Descriptors of every footprint, in input order.

    Attributes:
        descriptors: one row per footprint; the columns of every raster kind side by side.
        geometry_wkb: each footprint in EPSG:4326 as WKB (None where it cannot be transformed).
        geometry_bounds: ``(n, 4)`` lon/lat box of each of those geometries (NaN where missing
            or empty), so that the rows can be written without decoding the WKB again.
        geometry_types: :func:`geometry_type_codes` of those geometries.
        unknown: kind -> {raster value: covered pixel area} for values the legend lacks.
        unknown_rows: kind -> footprints that cover such a value.
        value_area: kind -> {raster value: area} over all footprints (the legend-fit check).
    """

    descriptors: pd.DataFrame
    geometry_wkb: NDArray[np.object_]
    geometry_bounds: NDArray[np.float64]
    geometry_types: NDArray[np.int8]
    unknown: dict[str, dict[float, float]]
    unknown_rows: dict[str, int]
    value_area: dict[str, dict[float, float]]


def describe_chunk(
    wkb: NDArray[np.object_],
    crs_values: NDArray[np.object_],
    specs: dict[str, RasterSpec],
    densify_pts: int = DENSIFY_PTS,
    compiled: bool = True,
) -> ChunkResult:
    """Describe one chunk of footprints (runs in a worker process or a Dask worker).

    Args:
        wkb: footprints as WKB bytes, each in its own CRS, as ``shapely.to_wkb`` writes them
            (the WKB of a footprint that is in EPSG:4326 already comes back as it is).
        crs_values: each footprint's CRS.
        specs: ``landcover`` and/or ``climate`` raster specs.
        densify_pts: extra vertices per edge before reprojection.
        compiled: use the compiled kernels (see :func:`csmoe_data.descriptors.class_areas`).

    Returns:
        The footprints in EPSG:4326 (WKB) and, per kind, the descriptor frame and the tallies
        of codes the legend lacks.
    """
    import shapely

    from csmoe_data.descriptors import class_areas, descriptor_arrays, tiled_class_areas
    from csmoe_data.geometry import transform_geometries_by_crs
    from csmoe_data.sources.longitudes import fit_longitudes

    geoms = shapely.from_wkb(wkb)
    crs_list = [str(c) for c in crs_values]
    # one reprojection per target CRS (4326 is often shared)
    transformed: dict[str, NDArray[np.object_]] = {}

    def to(crs: str) -> NDArray[np.object_]:
        if crs not in transformed:
            transformed[crs] = transform_geometries_by_crs(geoms, crs_list, crs, densify_pts)
        return transformed[crs]

    kinds: dict[str, KindResult] = {}
    for kind, spec in specs.items():
        if spec.index is not None:  # a set of tiles
            ca = tiled_class_areas(
                to, to("EPSG:4326"), spec.tiles, spec.index, spec.legend, compiled
            )
        else:
            ca = class_areas(
                fit_longitudes(to(spec.info.crs), spec.info.lon_west),
                spec.info,
                spec.legend,
                compiled,
                spec.in_memory,
            )
        kinds[kind] = KindResult(
            arrays=descriptor_arrays(ca, spec.legend),
            unknown=ca.unknown,
            unknown_rows=ca.unknown_rows,
            value_area=_value_area(ca, spec.legend),
        )
    lonlat = to("EPSG:4326")
    return ChunkResult(
        geometry=_lonlat_wkb(lonlat, geoms, wkb),
        bounds=shapely.bounds(lonlat),
        type_codes=geometry_type_codes(lonlat),
        kinds=kinds,
    )


def _lonlat_wkb(
    lonlat: NDArray[np.object_], geoms: NDArray[np.object_], wkb: NDArray[np.object_]
) -> NDArray[np.object_]:
    """WKB of ``lonlat``: the input's own bytes where the transform left a geometry as it was.

    Footprints already in EPSG:4326 (and not cut at the antimeridian) come out of the
    transform as the very objects ``geoms`` holds, decoded from ``wkb``; encoding them again
    would give the same bytes (``wkb`` is ``shapely.to_wkb``'s), at about a microsecond each.
    """
    import shapely

    same = np.asarray(np.frompyfunc(operator.is_, 2, 1)(lonlat, geoms), dtype=bool)
    if not same.any():
        return np.asarray(shapely.to_wkb(lonlat), dtype=object)
    out = np.array(wkb, dtype=object)  # a copy: the task's own array stays as it was
    if not same.all():
        out[~same] = shapely.to_wkb(lonlat[~same])
    return out


def warm_worker(compiled: bool) -> None:
    """Load what describing needs into a worker before its first chunk arrives.

    With ``compiled``, numba and the kernels' dispatchers (importing numba is most of the
    compiled path's start-up); run while the parent reads the first batch of footprints.
    """
    if compiled:
        from csmoe_data.engine.kernels import jit_kernels

        jit_kernels()


def spatial_order(geoms: NDArray[np.object_], crs_values: NDArray[np.object_]) -> NDArray[np.int64]:
    """Order footprints by 1-degree cell of their centroid (locality for raster reads)."""
    import shapely

    from csmoe_data.geometry import point_xy, points_lonlat

    lon, lat = points_lonlat(*point_xy(shapely.centroid(geoms)), crs_values)
    x, y = (np.nan_to_num(v, nan=0.0) for v in (lon, lat))
    # serpentine rows keep neighbouring cells next to each other
    row = np.floor(y).astype(np.int64)
    col = np.floor(x).astype(np.int64)
    col = np.where(row % 2 == 0, col, -col)
    return np.lexsort((x, col, row))


def open_runner(
    specs: dict[str, RasterSpec],
    densify_pts: int,
    compiled: bool,
    execution: ExecutionOptions,
) -> TaskRunner[ChunkResult]:
    """The executor that describes chunks for a whole job (enter it before loading footprints).

    :func:`describe_chunk` is looked up here, at call time (tests replace it).
    """
    return TaskRunner(
        describe_chunk,
        (specs, densify_pts, compiled),
        workers=execution.workers,
        dask_scheduler=execution.dask_scheduler,
    )


@dataclass
class PreparedBatch:
    """A batch of footprints cut into the tasks of :func:`describe_chunk`.

    Attributes:
        rows: footprints in the batch.
        order: the spatial order the tasks follow (:func:`spatial_order`).
        chunk_size: footprints per task.
        tasks: ``(wkb, crs)`` of each chunk of ``chunk_size`` footprints in that order.
    """

    rows: int
    order: NDArray[np.int64]
    chunk_size: int
    tasks: list[Task]


def prepare_batch(table: pd.DataFrame, chunk_size: int) -> PreparedBatch:
    """Order a batch of footprints spatially and cut it into tasks (no worker needed).

    A streamed build prepares batch k+1 in its read stage while the workers describe batch k,
    so that they do not wait for this between two batches.
    """
    import shapely

    n = len(table)
    geoms = np.asarray(table[schema.GEOMETRY].values, dtype=object)
    crs_values = np.asarray(table[schema.CRS].astype(str).to_numpy(), dtype=object)
    order = spatial_order(geoms, crs_values) if n else np.empty(0, dtype=np.int64)
    wkb_sorted = shapely.to_wkb(geoms[order])
    crs_sorted = crs_values[order]
    tasks: list[Task] = [
        (wkb_sorted[s : s + chunk_size], crs_sorted[s : s + chunk_size])
        for s in range(0, n, chunk_size)
    ]
    return PreparedBatch(n, order, chunk_size, tasks)


def describe_batch(
    table: pd.DataFrame,
    specs: dict[str, RasterSpec],
    runner: TaskRunner[ChunkResult],
    chunk_size: int,
    advance: Callable[[int], None] | None = None,
) -> Described:
    """Describe one batch of footprints (``geometry`` and ``crs`` columns) with an open runner.

    Args:
        table: the footprints, each in its own CRS.
        specs: ``landcover`` and/or ``climate`` raster specs (those the runner was opened with).
        runner: from :func:`open_runner`, entered.
        chunk_size: footprints per task.
        advance: called with the footprints done after each task (progress bars).

    Raises:
        CsmoeDataError: unreadable pixels.
    """
    return describe_prepared(prepare_batch(table, chunk_size), specs, runner, advance)


def describe_prepared(
    prepared: PreparedBatch,
    specs: dict[str, RasterSpec],
    runner: TaskRunner[ChunkResult],
    advance: Callable[[int], None] | None = None,
) -> Described:
    """:func:`describe_batch` of a batch :func:`prepare_batch` made ready.

    Raises:
        CsmoeDataError: unreadable pixels.
    """
    n, order, chunk, tasks = prepared.rows, prepared.order, prepared.chunk_size, prepared.tasks
    parts: dict[str, list[DescriptorArrays | None]] = {k: [None] * len(tasks) for k in specs}
    geometry_wkb = np.empty(n, dtype=object)
    geometry_bounds = np.empty((n, 4))
    geometry_types = np.empty(n, dtype=np.int8)
    # per-chunk tallies, summed in chunk order afterwards (deterministic floats)
    chunk_unknown: dict[str, list[dict[float, float]]] = {k: [{}] * len(tasks) for k in specs}
    chunk_values: dict[str, list[dict[float, float]]] = {k: [{}] * len(tasks) for k in specs}
    unknown_rows: dict[str, int] = dict.fromkeys(specs, 0)

    def on_done(i: int, result: ChunkResult) -> None:
        sl = order[i * chunk : (i + 1) * chunk]
        geometry_wkb[sl] = result["geometry"]
        geometry_bounds[sl] = result["bounds"]
        geometry_types[sl] = result["type_codes"]
        for k in specs:
            part = result["kinds"][k]
            parts[k][i] = part["arrays"]
            chunk_unknown[k][i] = part["unknown"]
            chunk_values[k][i] = part["value_area"]
            unknown_rows[k] += part["unknown_rows"]
        if advance is not None:
            advance(len(sl))

    runner.run(tasks, on_done)
    unknown: dict[str, dict[float, float]] = {k: {} for k in specs}
    value_area: dict[str, dict[float, float]] = {k: {} for k in specs}
    for k in specs:
        for tally in chunk_unknown[k]:
            for v, a in tally.items():
                unknown[k][v] = unknown[k].get(v, 0.0) + a
        for tally in chunk_values[k]:
            for v, a in tally.items():
                value_area[k][v] = value_area[k].get(v, 0.0) + a

    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    desc = []
    for k in specs:
        if not tasks:
            desc.append(pd.DataFrame())
            continue
        done = [p for p in parts[k] if p is not None]
        assert len(done) == len(tasks)  # runner.run reports every task or raises
        # one frame per kind and batch, its rows in input order (not one frame per chunk)
        desc.append(DescriptorArrays.concat(done).take(inverse).frame())
    descriptors = pd.concat(desc, axis=1) if desc else pd.DataFrame(index=range(n))
    return Described(
        descriptors,
        geometry_wkb,
        geometry_bounds,
        geometry_types,
        unknown,
        unknown_rows,
        value_area,
    )


def describe_footprints(
    table: pd.DataFrame,
    specs: dict[str, RasterSpec],
    densify_pts: int = DENSIFY_PTS,
    execution: ExecutionOptions | None = None,
) -> Described:
    """Describe every footprint of ``table`` (``geometry`` and ``crs`` columns) with ``specs``.

    Args:
        table: the footprints, each in its own CRS.
        specs: ``landcover`` and/or ``climate`` raster specs.
        densify_pts: extra vertices per edge before reprojection.
        execution: workers, Dask scheduler, chunk size, progress bar.

    Raises:
        CsmoeDataError: bad execution options, an unreachable Dask scheduler, unreadable pixels.
    """
    from csmoe_data.builder.load import plan_reads

    execution = check_execution(execution or ExecutionOptions())
    specs = plan_reads(specs, execution.raster_memory_mb)
    n = len(table)
    compiled = n >= COMPILED_MIN_FOOTPRINTS
    with (
        progress_bar("describing footprints", n, "patches", execution.progress) as advance,
        open_runner(specs, densify_pts, compiled, execution) as runner,
    ):
        return describe_batch(table, specs, runner, execution.chunk_size, advance)
