"""Stage 1 of a build: validate the rasters and legends, then load the footprints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from csmoe_data.builder.options import BuildInputs
from csmoe_data.engine.io import RasterInfo, inspect_raster
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints
from csmoe_data.legends import Legend, load_legend


@dataclass(frozen=True)
class RasterSpec:
    """A raster with its legend, as sent to workers."""

    info: RasterInfo
    legend: Legend


@dataclass
class LoadedInputs:
    """The validated inputs of a build.

    Attributes:
        specs: ``landcover`` and/or ``climate`` raster specs, in that order.
        given: each raster as the user named it (``sample:<name>`` stays portable in metadata).
        footprints: the loaded footprints.
        footprints_path: the footprint source resolved to a path.
    """

    specs: dict[str, RasterSpec]
    given: dict[str, str | Path]
    footprints: Footprints
    footprints_path: Path


def load_rasters(inputs: BuildInputs) -> tuple[dict[str, RasterSpec], dict[str, str | Path]]:
    """Load the legends and inspect the rasters of ``inputs`` (nothing is read beyond one block).

    Returns:
        ``(specs, given)``: see :class:`LoadedInputs`.

    Raises:
        CsmoeDataError: no raster at all, a legend without its raster or a raster without its
            legend, an unknown or malformed legend, a missing/unreadable/corrupt raster.
    """
    from csmoe_data.samples import resolve_path

    if inputs.landcover is None and inputs.climate is None:
        raise CsmoeDataError(
            "give --landcover and/or --climate (a manifest needs at least one descriptor)"
        )
    specs: dict[str, RasterSpec] = {}
    given: dict[str, str | Path] = {}
    for kind, raster, legend_spec, role in (
        ("landcover", inputs.landcover, inputs.landcover_legend, "land-cover raster"),
        ("climate", inputs.climate, inputs.climate_legend, "climate raster"),
    ):
        if raster is None:
            if legend_spec is not None:
                raise CsmoeDataError(f"--{kind}-legend is given without --{kind}")
            continue
        if legend_spec is None:
            raise CsmoeDataError(
                f"--{kind} needs --{kind}-legend (a built-in name or a legend file)"
            )
        legend = load_legend(
            resolve_path(legend_spec) if str(legend_spec).startswith("sample:") else legend_spec,
            "landcover" if kind == "landcover" else "climate",
        )
        specs[kind] = RasterSpec(inspect_raster(raster, role), legend)
        given[kind] = raster
    return specs, given


def load_inputs(inputs: BuildInputs) -> LoadedInputs:
    """Validate the rasters and legends first (cheap), then load the footprints.

    Raises:
        CsmoeDataError: see :func:`load_rasters`; an unreadable or empty footprint source.
    """
    from csmoe_data.footprints import load_footprints
    from csmoe_data.samples import resolve_path

    specs, given = load_rasters(inputs)
    fp = load_footprints(
        inputs.footprints, id_column=inputs.id_column, labels_column=inputs.labels_column
    )
    if len(fp.table) == 0:
        raise CsmoeDataError(f"no footprints in {inputs.footprints}")
    return LoadedInputs(specs, given, fp, resolve_path(inputs.footprints))
