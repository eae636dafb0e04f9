"""``build_manifest``: the stages of a build, batch by batch, with every check before the work.

Footprints are read, described and written in batches (:mod:`csmoe_data.builder.stream`,
:class:`csmoe_data.builder.write.ManifestWriter`), so the memory of the whole process tree does
not grow with the number of footprints (GeoParquet sources; other sources are loaded whole).
The output does not depend on the batch size, the chunk size, the workers or the executor.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from csmoe_common import manifest as columns
from csmoe_data.builder import describe as describe_stage
from csmoe_data.builder.assemble import manifest_columns
from csmoe_data.builder.background import Background, Stopped
from csmoe_data.builder.describe import (
    Described,
    PreparedBatch,
    describe_prepared,
    open_runner,
    prepare_batch,
)
from csmoe_data.builder.executors import fewer_gc_passes
from csmoe_data.builder.load import load_rasters, plan_reads
from csmoe_data.builder.metadata import (
    FootprintSummary,
    metadata_document,
    valid_summary,
    warnings_for,
)
from csmoe_data.builder.options import BuildInputs, BuildResult, ExecutionOptions, check_execution
from csmoe_data.builder.sample import sampling_requested
from csmoe_data.builder.stream import READ_BATCH_ROWS, BatchTally, footprint_batches
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints
from csmoe_data.sampling.options import SamplingOptions


class _ValidMeans:
    """Running NaN-aware means of ``lc_valid_frac`` / ``kg_valid_frac`` over written rows."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, gdf: object) -> None:
        for kind, col in (("landcover", columns.LC_VALID_FRAC), ("climate", columns.KG_VALID_FRAC)):
            if col in gdf.columns:  # type: ignore[attr-defined]
                v = gdf[col].to_numpy(dtype=np.float64)  # type: ignore[index]
                ok = np.isfinite(v)
                self.sums[kind] = self.sums.get(kind, 0.0) + float(v[ok].sum())
                self.counts[kind] = self.counts.get(kind, 0) + int(ok.sum())

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}


def _total_bounds(bounds: NDArray[np.float64]) -> tuple[float, float, float, float] | None:
    """The box around per-row boxes (``(n, 4)``, NaN rows skipped); None when every row is NaN.

    The same box as :func:`csmoe_data.builder.metadata.geometry_bounds` of the geometries.
    """
    present = ~np.isnan(bounds[:, 0])
    if not present.any():
        return None
    b = bounds[present]
    return (
        float(np.nanmin(b[:, 0])),
        float(np.nanmin(b[:, 1])),
        float(np.nanmax(b[:, 2])),
        float(np.nanmax(b[:, 3])),
    )


def build_manifest(
    inputs: BuildInputs,
    out: str | Path,
    execution: ExecutionOptions | None = None,
    sampling: SamplingOptions | None = None,
    overwrite: bool = False,
    batch_rows: int = READ_BATCH_ROWS,
) -> BuildResult:
    """Compute thematic-climatic descriptors for footprints and write a GeoParquet manifest.

    Stages: load (rasters and legends validated; a Dask scheduler connected, so an unreachable
    one is reported before any footprint is read), then per batch of footprints: read,
    describe (chunks in this process, a process pool or a Dask cluster), assemble (rows in input
    order), write (row groups); finally the metadata. With sampling options the described pool
    is written to a temporary file beside ``out``, sampled and removed. To sample an existing
    manifest instead, see :func:`csmoe_data.builder.sample_pool`.

    Args:
        inputs: footprints, rasters and legends.
        out: the manifest to write (``.parquet``).
        execution: workers, Dask scheduler, chunk size, progress; never changes the output.
        sampling: rows are selected when it sets ``n``, ``split`` or ``where``.
        overwrite: replace an existing ``out``.
        batch_rows: footprints read, described and written per batch (bounds memory; never
            changes the output).

    Returns:
        A :class:`~csmoe_data.builder.options.BuildResult`.

    Raises:
        CsmoeDataError: bad input (missing/unreadable/corrupt files, raster without CRS, empty
            footprint source, duplicate or missing ids, unknown legend, bad options, an
            unreachable Dask scheduler). Nothing is written then.
        CsmoeError: an existing output without ``overwrite`` (checked before any work).
    """
    from csmoe_common.atomic import check_output_path
    from csmoe_common.progress import progress_bar
    from csmoe_data.builder.write import ManifestWriter

    execution = check_execution(execution or ExecutionOptions())
    if batch_rows < 1:
        raise CsmoeDataError(f"batch size must be >= 1, not {batch_rows}")
    out = check_output_path(out, overwrite)  # fail before any long work
    specs, given = load_rasters(inputs)
    specs = plan_reads(specs, execution.raster_memory_mb)
    sampled = sampling is not None and sampling_requested(sampling)
    target = out.parent / f".{out.name}.pool.{os.getpid()}.parquet" if sampled else out
    tally = BatchTally()
    valid = _ValidMeans()
    unknown: dict[str, dict[float, float]] = {k: {} for k in specs}
    value_area: dict[str, dict[float, float]] = {k: {} for k in specs}
    unknown_rows: dict[str, int] = dict.fromkeys(specs, 0)
    bounds: list[float] | None = None
    missing_geometry = 0
    runner = open_runner(specs, inputs.densify_pts, False, execution)
    try:
        # a Dask scheduler is connected on entering the runner, before any footprint is read;
        # the collector runs less often while the batches' geometries come and go
        with fewer_gc_passes(), runner:
            source = footprint_batches(inputs, batch_rows)
            tally.reserve(source.total)  # the id hashes, one buffer for the whole job
            # one kernel choice for the whole job, so that every worker takes the same path
            compiled = source.total >= describe_stage.COMPILED_MIN_FOOTPRINTS
            runner.extra = (specs, inputs.densify_pts, compiled)
            runner.warm(describe_stage.warm_worker, compiled)
            stop = threading.Event()
            with (
                progress_bar(
                    "describing footprints", source.total, "patches", execution.progress
                ) as advance,
                ManifestWriter(target, overwrite=overwrite or sampled) as writer,
            ):

                def advance_unless_stopped(n: int) -> None:
                    if stop.is_set():  # the build stopped: the describe stage stops too
                        raise Stopped
                    advance(n)

                def prepared_batches(
                    batches: Iterable[Footprints],
                ) -> Iterator[tuple[Footprints, PreparedBatch | None]]:
                    for fp in batches:  # ordered and cut into tasks in the read stage
                        empty = len(fp.table) == 0
                        yield fp, None if empty else prepare_batch(fp.table, execution.chunk_size)

                def described_batches(
                    batches: Iterable[tuple[Footprints, PreparedBatch | None]],
                ) -> Iterator[tuple[Footprints, Described | None]]:
                    for fp, prepared in batches:
                        if prepared is None:
                            yield fp, None
                            continue
                        described = describe_prepared(
                            prepared, specs, runner, advance_unless_stopped
                        )
                        yield fp, described

                # three stages overlap: batch k+1 is read and cut into tasks (stage thread),
                # batch k described (stage thread, the workers), batch k-1 assembled and
                # written (here)
                with (
                    Background(
                        prepared_batches(source.batches), 1, "csmoe-read-footprints", stop
                    ) as read,
                    Background(described_batches(read), 1, "csmoe-describe", stop) as stage,
                ):
                    for fp, described in stage:
                        tally.add(fp)
                        advance(fp.dropped)
                        if described is None:
                            continue
                        for k in specs:
                            for v, a in described.unknown[k].items():
                                unknown[k][v] = unknown[k].get(v, 0.0) + a
                            for v, a in described.value_area[k].items():
                                value_area[k][v] = value_area[k].get(v, 0.0) + a
                            unknown_rows[k] += described.unknown_rows[k]
                        rows = manifest_columns(fp.table, described, out.parent)
                        box = _total_bounds(described.geometry_bounds)
                        if box is not None:
                            bounds = (
                                list(box)
                                if bounds is None
                                else [
                                    min(bounds[0], box[0]),
                                    min(bounds[1], box[1]),
                                    max(bounds[2], box[2]),
                                    max(bounds[3], box[3]),
                                ]
                            )
                        missing_geometry += int(pd.isna(described.geometry_wkb).sum())
                        valid.add(rows)
                        # the workers' WKB is written as it is (no decoding here)
                        writer.write_encoded(
                            rows,
                            described.geometry_wkb,
                            described.geometry_bounds,
                            described.geometry_types,
                        )
                        del rows, described, fp
                if tally.rows == 0:
                    raise CsmoeDataError(
                        "no usable footprint left (every geometry was empty or not polygonal)"
                    )
                tally.check_unique_ids(inputs.id_column)
                summary = FootprintSummary(
                    rows=tally.rows,
                    crs_values=list(tally.crs_values),
                    repaired=tally.repaired,
                    dropped=tally.dropped,
                    notes=tally.merged_notes(),
                    missing_geometry=missing_geometry,
                )
                warnings = warnings_for(
                    specs,
                    value_area,
                    None if bounds is None else tuple(bounds),  # type: ignore[arg-type]
                )
                metadata = metadata_document(
                    inputs, specs, given, source.path, summary, unknown, unknown_rows, warnings
                )
                writer.close(metadata)
        pool_rows = tally.rows
        rows, valid_frac = tally.rows, valid.means()
        if sampled:
            assert sampling is not None
            from csmoe_data.manifest import read_manifest, write_manifest
            from csmoe_data.sampling import sample_manifest

            gdf, _ = read_manifest(target)
            gdf, metadata["sampling"] = sample_manifest(gdf, sampling)
            write_manifest(gdf, out, metadata, overwrite=overwrite)
            rows, valid_frac = len(gdf), valid_summary(gdf)
    finally:
        if sampled:
            with contextlib.suppress(OSError):
                target.unlink()
    return BuildResult(
        path=out,
        rows=rows,
        pool_rows=pool_rows,
        metadata=metadata,
        valid_frac=valid_frac,
        unknown_codes=unknown,
        repaired=tally.repaired,
        dropped=tally.dropped,
        notes=tally.merged_notes(),
        warnings=warnings,
    )
