"""Stage 1 of a build: validate the rasters and legends, then load the footprints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from csmoe_data.builder.options import BuildInputs
from csmoe_data.engine.io import RasterInfo, RasterOptions, inspect_raster
from csmoe_data.errors import CsmoeDataError
from csmoe_data.footprints.core import Footprints
from csmoe_data.legends import Legend, load_legend

if TYPE_CHECKING:
    from csmoe_data.sources.tiles import TileIndex


@dataclass(frozen=True)
class RasterSpec:
    """A raster (or a set of tiles) with its legend, as sent to workers.

    Attributes:
        info: the raster (the first tile of a set).
        legend: its legend.
        tiles: every tile of a set (empty for a single raster).
        index: the spatial index of the tiles (None for a single raster).
        in_memory: decode the (single) raster whole once per worker and slice footprint
            windows from it (see :func:`plan_reads`); else windowed reads.
    """

    info: RasterInfo
    legend: Legend
    tiles: tuple[RasterInfo, ...] = ()
    index: TileIndex | None = None
    in_memory: bool = False

    @property
    def rasters(self) -> tuple[RasterInfo, ...]:
        """Every raster read: the tiles, or the one raster."""
        return self.tiles or (self.info,)


def plan_reads(specs: dict[str, RasterSpec], raster_memory_mb: float) -> dict[str, RasterSpec]:
    """The specs with their read strategy: in memory for the single rasters that fit the budget.

    Sets of tiles are read by windows (their footprints open only the tiles they touch).

    Args:
        specs: the job's raster specs.
        raster_memory_mb: memory per worker for rasters decoded whole, MB
            (:func:`csmoe_data.engine.io.plan_in_memory`).
    """
    from dataclasses import replace

    from csmoe_data.engine.io import plan_in_memory

    single = [s.info for s in specs.values() if s.index is None]
    chosen = plan_in_memory(single, raster_memory_mb)
    return {
        k: replace(s, in_memory=s.index is None and s.info.path in chosen) for k, s in specs.items()
    }


#: header reads of tiles run in this many threads (GDAL releases the GIL while it parses)
_HEADER_THREADS = 8


def _inspect_all(paths: list[str], role: str, options: RasterOptions) -> list[RasterInfo]:
    from concurrent.futures import ThreadPoolExecutor

    if len(paths) < 8:
        return [inspect_raster(p, role, options) for p in paths]
    with ThreadPoolExecutor(max_workers=_HEADER_THREADS) as pool:
        return list(pool.map(lambda p: inspect_raster(p, role, options), paths))


def raster_spec(
    values: str | Path | Sequence[str | Path], legend: Legend, role: str, options: RasterOptions
) -> RasterSpec:
    """Expand the option's values into rasters, inspect each, index a set of tiles.

    Raises:
        CsmoeDataError: see :func:`csmoe_data.sources.paths.expand_raster_values` and
            :func:`csmoe_data.engine.io.inspect_raster`; tiles whose values cannot share one
            legend (integer and float bands mixed).
    """
    from csmoe_data.sources.paths import expand_raster_values
    from csmoe_data.sources.tiles import TileIndex

    paths = expand_raster_values(values, role)
    infos = _inspect_all(paths, role, options)
    if len(infos) == 1:
        return RasterSpec(infos[0], legend)
    kinds = {np.dtype(i.dtype).kind == "f" for i in infos}
    if len(kinds) > 1:
        raise CsmoeDataError(f"{role}: the tiles mix integer and float bands; give one product")
    index = TileIndex.build([i.crs for i in infos], [i.bounds for i in infos])
    return RasterSpec(infos[0], legend, tuple(infos), index)


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
    given: dict[str, str | Path | list[str | Path]]
    footprints: Footprints
    footprints_path: Path


def load_rasters(
    inputs: BuildInputs,
) -> tuple[dict[str, RasterSpec], dict[str, str | Path | list[str | Path]]]:
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
    given: dict[str, str | Path | list[str | Path]] = {}
    for kind, raster, legend_spec, role, options in (
        (
            "landcover",
            inputs.landcover,
            inputs.landcover_legend,
            "land-cover raster",
            RasterOptions(
                inputs.landcover_band, inputs.landcover_var, inputs.landcover_crs, "--landcover"
            ),
        ),
        (
            "climate",
            inputs.climate,
            inputs.climate_legend,
            "climate raster",
            RasterOptions(inputs.climate_band, inputs.climate_var, inputs.climate_crs, "--climate"),
        ),
    ):
        if raster is None or (not isinstance(raster, str | Path) and not len(raster)):
            stray = [
                f"--{kind}-{what}"
                for what, value in (
                    ("legend", legend_spec),
                    ("band", options.band),
                    ("var", options.variable),
                    ("crs", options.crs),
                )
                if value is not None
            ]
            if stray:
                raise CsmoeDataError(f"{', '.join(stray)} given without --{kind}")
            continue
        if legend_spec is None:
            raise CsmoeDataError(
                f"--{kind} needs --{kind}-legend (a built-in name or a legend file)"
            )
        legend = load_legend(
            resolve_path(legend_spec) if str(legend_spec).startswith("sample:") else legend_spec,
            "landcover" if kind == "landcover" else "climate",
        )
        specs[kind] = raster_spec(raster, legend, role, options)
        given[kind] = raster if isinstance(raster, str | Path) else list(raster)
    return specs, given


def load_inputs(inputs: BuildInputs) -> LoadedInputs:
    """Validate the rasters and legends first (cheap), then load the footprints.

    Raises:
        CsmoeDataError: see :func:`load_rasters`; an unreadable or empty footprint source.
    """
    from csmoe_data.samples import resolve_path

    specs, given = load_rasters(inputs)
    return LoadedInputs(specs, given, load_all_footprints(inputs), resolve_path(inputs.footprints))


def load_all_footprints(inputs: BuildInputs) -> Footprints:
    """Load the whole footprint source with the build's footprint options.

    Raises:
        CsmoeDataError: an unreadable source, or one without footprints.
    """
    from csmoe_data.footprints import load_footprints

    fp = load_footprints(
        inputs.footprints,
        id_column=inputs.id_column,
        labels_column=inputs.labels_column,
        layer=inputs.layer,
        crs=inputs.crs,
        point_size=inputs.point_size,
        dissolve_ids=inputs.dissolve_ids,
        majortom=inputs.majortom,
    )
    if len(fp.table) == 0:
        raise CsmoeDataError(f"no footprints in {inputs.footprints}")
    return fp
