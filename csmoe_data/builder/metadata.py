"""Stage 4 of a build: the ``csmoe`` metadata recorded beside the rows (inputs, legends, tallies).

The document is described in ``data_manifests/README.md``; it records what a build read (paths,
checksums, CRS, resolution), the legends, the parameters and the codes the legends lack, and
nothing that depends on how the build ran (workers, executor, chunking).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csmoe_common import manifest as schema
from csmoe_common.version import __version__
from csmoe_data.builder.describe import Described
from csmoe_data.builder.load import LoadedInputs
from csmoe_data.builder.options import BuildInputs
from csmoe_data.engine.io import RasterInfo


def input_entry(info: RasterInfo, given: str | Path) -> dict[str, Any]:
    """The ``inputs`` entry of a raster: its :class:`RasterInfo` and sha256."""
    from csmoe_data.manifest import file_sha256
    from csmoe_data.samples import is_sample

    entry = info.to_metadata()
    entry["sha256"] = file_sha256(info.path)
    if is_sample(given):  # portable: embedded samples move with the installation
        entry["path"] = str(given)
    return entry


def footprints_entry(
    source: str, resolved: Path, crs_values: list[str], rows: int
) -> dict[str, Any]:
    """The ``inputs.footprints`` entry: path, CRS, rows and a checksum of the file or listing."""
    from csmoe_data.manifest import file_sha256
    from csmoe_data.samples import is_sample

    path = source if is_sample(source) else str(resolved.resolve())
    entry: dict[str, Any] = {"path": path, "crs": crs_values, "rows": rows}
    if resolved.is_file():
        entry["sha256"] = file_sha256(resolved)
    elif resolved.is_dir():
        # hashing every image of an archive would read terabytes; the listing identifies it
        digest = hashlib.sha256()
        for f in sorted(p for p in resolved.rglob("*") if p.is_file()):
            digest.update(f"{f.relative_to(resolved).as_posix()}\t{f.stat().st_size}\n".encode())
        entry["listing_sha256"] = digest.hexdigest()
    return entry


def build_metadata(
    inputs: BuildInputs, loaded: LoadedInputs, described: Described, missing_geometry: int
) -> dict[str, Any]:
    """The ``csmoe`` metadata of a freshly described manifest (before any sampling)."""
    fp = loaded.footprints
    n = len(fp.table)
    metadata: dict[str, Any] = {
        "tool": {"name": "csmoe", "version": __version__, "command": "build-manifest"},
        "inputs": {
            "footprints": footprints_entry(
                str(inputs.footprints), loaded.footprints_path, fp.crs_values, n
            )
        },
        "legends": {},
        "parameters": {
            "id_column": inputs.id_column,
            "labels_column": inputs.labels_column,
            "densify_pts": inputs.densify_pts,
            "weighting": "exact pixel/footprint overlap area (pixel units of each raster)",
            "entropy": "Shannon entropy of lc_ fractions, natural log (nats)",
        },
        "footprints": {
            "rows": n,
            "repaired": fp.repaired,
            "dropped": fp.dropped,
            "notes": list(fp.notes),
            "geometry_not_transformable": missing_geometry,
        },
        "unknown_codes": {},
    }
    for k, spec in loaded.specs.items():
        metadata["inputs"][k] = input_entry(spec.info, loaded.given[k])
        metadata["legends"][k] = spec.legend.to_metadata()
        metadata["unknown_codes"][k] = {
            "values": {str(v): round(a, 6) for v, a in sorted(described.unknown[k].items())},
            "rows": described.unknown_rows[k],
        }
    return metadata


def valid_summary(gdf: pd.DataFrame) -> dict[str, float]:
    """Mean land-cover and climate valid fraction of the rows (for the CLI's summary)."""
    out = {}
    for kind, col in (("landcover", schema.LC_VALID_FRAC), ("climate", schema.KG_VALID_FRAC)):
        if col in gdf.columns and len(gdf):
            out[kind] = float(np.nanmean(gdf[col].to_numpy(dtype=np.float64)))
    return out
