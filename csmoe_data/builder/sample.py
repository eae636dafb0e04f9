"""Sampling as a library entry point: select rows of an existing pool manifest into a new one."""

from __future__ import annotations

from pathlib import Path

from csmoe_data.builder.metadata import valid_summary
from csmoe_data.builder.options import BuildResult
from csmoe_data.errors import CsmoeDataError
from csmoe_data.sampling.options import SamplingOptions


def sampling_requested(options: SamplingOptions | None) -> bool:
    """Whether sampling options ask for a selection (``n``, ``split`` or ``where``)."""
    return options is not None and (
        options.n is not None or options.split is not None or options.where is not None
    )


def sample_pool(
    pool: str | Path,
    out: str | Path,
    options: SamplingOptions | None = None,
    overwrite: bool = False,
) -> BuildResult:
    """Sample an existing descriptor manifest ``pool`` into a new manifest ``out``.

    The new manifest keeps the pool's metadata (inputs, legends) and adds ``pool`` (path,
    sha256, rows) and ``sampling`` entries.

    Args:
        pool: the pool manifest (path or ``sample:<name>``).
        out: the manifest to write.
        options: what to select (default :class:`SamplingOptions`: every eligible row).
        overwrite: replace an existing ``out``.

    Raises:
        CsmoeDataError: ``out`` exists without ``overwrite`` or is the pool itself, the pool
            cannot be read, bad sampling options. Nothing is written then.
    """
    from csmoe_common.atomic import check_output_path
    from csmoe_data.builder.assemble import rebase_imagery_paths
    from csmoe_data.manifest import file_sha256, read_manifest, write_manifest
    from csmoe_data.samples import resolve_path
    from csmoe_data.sampling import sample_manifest

    out = check_output_path(out, overwrite)
    pool_path = resolve_path(pool)
    gdf, meta = read_manifest(pool_path)
    if pool_path.resolve() == out.resolve():
        raise CsmoeDataError("--pool and --out are the same file; write the sample to a new file")
    checksum = file_sha256(pool_path)
    gdf2, entry = sample_manifest(gdf, options or SamplingOptions(), checksum)
    # the sample's paths are relative to its own folder, which need not be the pool's
    gdf2 = rebase_imagery_paths(gdf2, pool_path.parent, out.parent)
    metadata = dict(meta)
    metadata["pool"] = {"path": str(pool_path.resolve()), "sha256": checksum, "rows": len(gdf)}
    metadata["sampling"] = entry
    path = write_manifest(gdf2, out, metadata, overwrite=overwrite)
    unknown = {
        k: {
            (int(float(v)) if float(v).is_integer() else float(v)): a
            for v, a in d.get("values", {}).items()
        }
        for k, d in meta.get("unknown_codes", {}).items()
    }
    return BuildResult(
        path=path,
        rows=len(gdf2),
        pool_rows=len(gdf),
        metadata=metadata,
        valid_frac=valid_summary(gdf2),
        unknown_codes=unknown,
        repaired=int(meta.get("footprints", {}).get("repaired", 0)),
        dropped=int(meta.get("footprints", {}).get("dropped", 0)),
    )
