"""Stage 4 of a build: the ``csmoe`` metadata recorded beside the rows (inputs, legends, tallies).

The document is described in ``data_manifests/README.md``; it records what a build read (paths,
checksums, CRS, resolution), the legends, the parameters and the codes the legends lack, and
nothing that depends on how the build ran (workers, executor, chunking).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csmoe_common import manifest as schema
from csmoe_common.version import __version__
from csmoe_data.builder.describe import Described
from csmoe_data.builder.load import LoadedInputs, RasterSpec
from csmoe_data.builder.options import BuildInputs


def input_entry(spec: RasterSpec, given: str | Path | list[str | Path]) -> dict[str, Any]:
    """The ``inputs`` entry of a raster or a set of tiles.

    One raster: its :class:`RasterInfo`, size and sha256 (a remote one: GDAL's checksum),
    and ``sources``, one entry per file read (a VRT's tiles included). A set of tiles: the
    values given, the tile count, each tile's metadata, and ``sources`` for every file.
    """
    from csmoe_data.samples import is_sample
    from csmoe_data.sources.paths import source_provenance

    sources: list[dict[str, Any]] = []
    for info in spec.rasters:
        sources.extend(source_provenance(info.path))
    if spec.index is None:
        entry = spec.info.to_metadata()
        first = sources[0]
        for key in ("size", "sha256", "checksum"):
            if key in first:
                entry[key] = first[key]
        if isinstance(given, str | Path) and is_sample(
            given
        ):  # portable: embedded samples move with the installation
            entry["path"] = str(given)
            for src in sources:
                src["path"] = str(given) if src["path"] == spec.info.path else src["path"]
        entry["sources"] = sources
        return entry
    values = given if isinstance(given, list) else [given]
    return {
        "given": [str(v) for v in values],
        "tiles": len(spec.tiles),
        "crs": sorted({t.crs for t in spec.tiles}),
        "tile_info": [t.to_metadata() for t in spec.tiles],
        "sources": sources,
    }


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


@dataclass
class FootprintSummary:
    """What the ``footprints`` entry of the metadata records about the loaded footprints.

    Attributes:
        rows: footprints described (after dropping unusable ones).
        crs_values: distinct CRSs in order of first appearance.
        repaired: invalid geometries repaired.
        dropped: footprints dropped while loading.
        notes: remarks from loading.
        missing_geometry: footprints whose EPSG:4326 geometry could not be computed.
    """

    rows: int
    crs_values: list[str]
    repaired: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)
    missing_geometry: int = 0


def build_metadata(
    inputs: BuildInputs,
    loaded: LoadedInputs,
    described: Described,
    missing_geometry: int,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The ``csmoe`` metadata of a freshly described manifest (before any sampling)."""
    fp = loaded.footprints
    summary = FootprintSummary(
        len(fp.table), fp.crs_values, fp.repaired, fp.dropped, list(fp.notes), missing_geometry
    )
    return metadata_document(
        inputs,
        loaded.specs,
        loaded.given,
        loaded.footprints_path,
        summary,
        described.unknown,
        described.unknown_rows,
        warnings,
    )


def metadata_document(
    inputs: BuildInputs,
    specs: dict[str, RasterSpec],
    given: dict[str, Any],
    footprints_path: Path,
    summary: FootprintSummary,
    unknown: dict[str, dict[float, float]],
    unknown_rows: dict[str, int],
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The ``csmoe`` metadata document from its parts (a streamed build adds them up per batch)."""
    n = summary.rows
    metadata: dict[str, Any] = {
        "tool": {"name": "csmoe", "version": __version__, "command": "build-manifest"},
        "inputs": {
            "footprints": footprints_entry(
                str(inputs.footprints), footprints_path, summary.crs_values, n
            )
        },
        "legends": {},
        "parameters": {
            "id_column": inputs.id_column,
            "labels_column": inputs.labels_column,
            "densify_pts": inputs.densify_pts,
            "weighting": (
                "exact pixel/footprint overlap area; pixels of lon/lat rasters weighted by "
                "their area on the sphere (R = 6378137 m, as exactextract's area_spherical_m2), "
                "of projected rasters equally; tiles of a set added in square metres"
            ),
            "layer": inputs.layer,
            "crs": inputs.crs,
            "point_size": inputs.point_size,
            "dissolve_ids": inputs.dissolve_ids,
            "entropy": "Shannon entropy of lc_ fractions, natural log (nats)",
        },
        "footprints": {
            "rows": n,
            "repaired": summary.repaired,
            "dropped": summary.dropped,
            "notes": list(summary.notes),
            "geometry_not_transformable": summary.missing_geometry,
        },
        "unknown_codes": {},
        "warnings": list(warnings or []),
    }
    from csmoe_data.footprints.majortom import is_majortom_metadata

    if is_majortom_metadata(footprints_path):
        metadata["parameters"]["majortom"] = inputs.majortom.to_metadata()
    for k, spec in specs.items():
        metadata["inputs"][k] = input_entry(spec, given[k])
        metadata["legends"][k] = spec.legend.to_metadata()
        metadata["unknown_codes"][k] = {
            "values": {str(v): round(a, 6) for v, a in sorted(unknown[k].items())},
            "rows": unknown_rows[k],
        }
    return metadata


def input_warnings(loaded: LoadedInputs, described: Described, gdf: pd.DataFrame) -> list[str]:
    """What probably needs a look: assumed CRSs and legends that do not fit the values found."""
    return warnings_for(loaded.specs, described.value_area, geometry_bounds(gdf))


def geometry_bounds(gdf: pd.DataFrame) -> tuple[float, float, float, float] | None:
    """The lon/lat box of the rows' geometries (None when none is present)."""
    import shapely

    geoms = np.asarray(gdf.geometry.values, dtype=object)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return None
    b = shapely.bounds(geoms[present])
    return (
        float(np.nanmin(b[:, 0])),
        float(np.nanmin(b[:, 1])),
        float(np.nanmax(b[:, 2])),
        float(np.nanmax(b[:, 3])),
    )


def warnings_for(
    specs: dict[str, RasterSpec],
    value_area: dict[str, dict[float, float]],
    bounds: tuple[float, float, float, float] | None,
) -> list[str]:
    """The warnings of :func:`input_warnings` from the specs, value areas and the rows' box."""
    from csmoe_data.legend_fit import legend_fit_warning

    out: list[str] = []
    for kind, spec in specs.items():
        for info in spec.rasters:
            if info.crs_source.startswith("assumed"):
                out.append(f"{kind} raster {info.path}: CRS {info.crs_source}")
                break
    if bounds is not None:
        lon_span, lat_span = bounds[2] - bounds[0], bounds[3] - bounds[1]
    else:
        lon_span = lat_span = 0.0
    for kind, spec in specs.items():
        message = legend_fit_warning(
            spec.legend, value_area[kind], lon_span, lat_span, f"--{kind}-legend"
        )
        if message:
            out.append(f"{kind} legend: {message}")
    return out


def valid_summary(gdf: pd.DataFrame) -> dict[str, float]:
    """Mean land-cover and climate valid fraction of the rows (for the CLI's summary)."""
    out = {}
    for kind, col in (("landcover", schema.LC_VALID_FRAC), ("climate", schema.KG_VALID_FRAC)):
        if col in gdf.columns and len(gdf):
            out[kind] = float(np.nanmean(gdf[col].to_numpy(dtype=np.float64)))
    return out
