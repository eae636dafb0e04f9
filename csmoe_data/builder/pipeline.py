"""``build_manifest``: the four stages of a build, in order, with every check before the work."""

from __future__ import annotations

from pathlib import Path

from csmoe_data.builder import describe as describe_stage
from csmoe_data.builder.assemble import assemble
from csmoe_data.builder.load import load_inputs
from csmoe_data.builder.metadata import build_metadata, input_warnings, valid_summary
from csmoe_data.builder.options import BuildInputs, BuildResult, ExecutionOptions, check_execution
from csmoe_data.builder.sample import sampling_requested
from csmoe_data.sampling.options import SamplingOptions


def build_manifest(
    inputs: BuildInputs,
    out: str | Path,
    execution: ExecutionOptions | None = None,
    sampling: SamplingOptions | None = None,
    overwrite: bool = False,
) -> BuildResult:
    """Compute thematic-climatic descriptors for footprints and write a GeoParquet manifest.

    Stages: load (rasters and legends validated, footprints loaded), describe (chunks in this
    process, a process pool or a Dask cluster), assemble (rows in input order), write (metadata,
    optional sampling, one atomic file). To sample an existing manifest instead, see
    :func:`csmoe_data.builder.sample_pool`.

    Args:
        inputs: footprints, rasters and legends.
        out: the manifest to write (``.parquet``).
        execution: workers, Dask scheduler, chunk size, progress; never changes the output.
        sampling: rows are selected when it sets ``n``, ``split`` or ``where``.
        overwrite: replace an existing ``out``.

    Returns:
        A :class:`~csmoe_data.builder.options.BuildResult`.

    Raises:
        CsmoeDataError: bad input (missing/unreadable/corrupt files, raster without CRS, empty
            footprint source, duplicate or missing ids, unknown legend, bad options). Nothing
            is written then.
        CsmoeError: an existing output without ``overwrite`` (checked before any work).
    """
    from csmoe_common.atomic import check_output_path
    from csmoe_data.manifest import write_manifest

    execution = check_execution(execution or ExecutionOptions())
    out = check_output_path(out, overwrite)  # fail before any long work
    loaded = load_inputs(inputs)
    table = loaded.footprints.table
    described = describe_stage.describe_footprints(
        table, loaded.specs, inputs.densify_pts, execution
    )
    gdf = assemble(table, described, out.parent)
    missing_geometry = int(gdf.geometry.isna().sum())
    warnings = input_warnings(loaded, described, gdf)
    metadata = build_metadata(inputs, loaded, described, missing_geometry, warnings)
    pool_rows = len(gdf)
    if sampling is not None and sampling_requested(sampling):
        from csmoe_data.sampling import sample_manifest

        gdf, metadata["sampling"] = sample_manifest(gdf, sampling)
    path = write_manifest(gdf, out, metadata, overwrite=overwrite)
    fp = loaded.footprints
    return BuildResult(
        path=path,
        rows=len(gdf),
        pool_rows=pool_rows,
        metadata=metadata,
        valid_frac=valid_summary(gdf),
        unknown_codes=described.unknown,
        repaired=fp.repaired,
        dropped=fp.dropped,
        notes=list(fp.notes),
        warnings=warnings,
    )
