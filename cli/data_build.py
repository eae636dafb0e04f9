"""CLI command ``csmoe-data build-manifest``: footprints + rasters -> descriptor manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from csmoe_cli._common import OnceCommand, console, err_console, fail, user_errors
from csmoe_data.builder.options import BuildInputs, ExecutionOptions
from csmoe_data.footprints.options import MajorTomOptions
from csmoe_data.legends import list_legends
from csmoe_data.sampling.options import ClimateLevel, SamplingOptions, StrategyName

if TYPE_CHECKING:
    from csmoe_data.builder.options import BuildResult

app = typer.Typer()

_SAMPLING = "Sampling (optional)"
_MAJORTOM = "Major TOM metadata sources"
#: the library's defaults, shown in --help and used when an option is not given
_EXECUTION = ExecutionOptions()
_OPTIONS = SamplingOptions()
_MT = MajorTomOptions()


def _sampling_options(
    n: int | None,
    strategy: StrategyName,
    alpha: float,
    seed: int,
    climate_level: ClimateLevel,
    landcover_groups: str | None,
    min_valid_frac: float,
    where: str | None,
    min_distance: float | None,
    split: str | None,
    split_block_size: float | None = None,
) -> SamplingOptions:
    from csmoe_data.samples import resolve_path
    from csmoe_data.sampling.options import parse_split

    try:
        split_map = parse_split(split) if split else None
    except ValueError as exc:
        raise fail(f"--split: {exc}") from None
    from csmoe_data.sampling.core import check_options

    options = SamplingOptions(
        n=n,
        strategy=strategy.value,
        alpha=alpha,
        seed=seed,
        climate_level=climate_level,
        landcover_groups=resolve_path(landcover_groups) if landcover_groups else None,
        min_valid_frac=min_valid_frac,
        where=where,
        min_distance=min_distance,
        split=split_map,
        split_block_size=split_block_size,
    )
    check_options(options)  # before the footprints are described, not after
    return options


def _one_or_many(values: list[str] | None) -> str | tuple[str, ...] | None:
    """A repeated raster option: None, its one value, or all its values (tiles)."""
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _summary(result: BuildResult) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = f"{result.rows:,}"
    if result.pool_rows != result.rows:
        rows += f" (selected from {result.pool_rows:,})"
    table.add_row("rows", rows)
    for kind, value in result.valid_frac.items():
        table.add_row(f"mean {kind} valid fraction", f"{value:.3f}")
    for kind, codes in result.unknown_codes.items():
        if codes:
            listed = ", ".join(f"{v} ({a:,.0f} px)" for v, a in sorted(codes.items())[:10])
            more = f" and {len(codes) - 10} more" if len(codes) > 10 else ""
            table.add_row(
                f"[yellow]unknown {kind} codes[/]", f"{listed}{more} (excluded from valid area)"
            )
    for warning in result.warnings:
        table.add_row("[yellow]warning[/]", warning)
    for note in result.notes:
        table.add_row("note", note)
    table.add_row("repaired geometries", str(result.repaired))
    if result.dropped:
        table.add_row("dropped footprints", str(result.dropped))
    # what the footprint source reported (pairing, tiling, skipped stores, ...)
    for note in result.metadata.get("footprints", {}).get("notes", []):
        table.add_row("footprints", str(note))
    warnings: list[str] = []
    if "sampling" in result.metadata:
        sampling = result.metadata["sampling"]
        table.add_row("sampling", str(sampling.get("strategy", "")))
        report = sampling.get("split_report")
        if isinstance(report, dict):
            shares = ", ".join(
                f"{k} {report['achieved'][k]:.1%} ({report['counts'][k]:,}; asked {v:.0%})"
                for k, v in report["requested"].items()
            )
            table.add_row("split shares", shares)
            table.add_row(
                "split blocks",
                f"{report['blocks']:,} of {report['block_size_m']:,.0f} m "
                f"({report['block_size_from']})",
            )
            table.add_row(
                "removed (touching another split)",
                f"{report['removed']:,}"
                + (
                    f" ({report['replaced']:,} replaced by rows of the same stratum)"
                    if report.get("replaced")
                    else ""
                ),
            )
            warnings += [str(w) for w in report.get("warnings", [])]
    table.add_row("manifest", str(result.path))
    console.print(table)
    sampling = result.metadata.get("sampling")
    if isinstance(sampling, dict):
        requested, selected = sampling.get("requested"), sampling.get("selected")
        if isinstance(requested, int) and isinstance(selected, int) and selected < requested:
            from csmoe_data.sampling.core import describe_eligibility

            breakdown = list((sampling.get("ineligible") or {}).items())
            split_report = sampling.get("split_report") or {}
            lost = int(split_report.get("removed", 0)) - int(split_report.get("replaced", 0))
            reason = describe_eligibility(
                int(sampling.get("pool_size", 0)), int(sampling.get("eligible", 0)), breakdown
            )
            if lost > 0:  # the usual reason: border rows without a replacement in the pool
                reason = (
                    f"{lost:,} rows touching another split were removed and had no replacement "
                    f"of their stratum that fits; {reason}"
                )
            err_console.print(
                f"[yellow]warning:[/] {selected:,} rows selected, fewer than --n {requested:,}: "
                + reason,
                highlight=False,
                soft_wrap=True,
            )
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}")


@app.command("build-manifest", cls=OnceCommand)
@user_errors
def build_manifest_cmd(
    out: Annotated[Path, typer.Option("--out", help="Manifest to write (GeoParquet).")],
    footprints: Annotated[
        str | None,
        typer.Option(
            "--footprints",
            help="Vector file, CSV (WKT or lon/lat), folder of patch GeoTIFFs, BigEarthNet root, "
            "Major TOM metadata Parquet (or folder), SSL4EO-S12 v1.1 root, or sample:bigearthnet.",
        ),
    ] = None,
    landcover: Annotated[
        list[str] | None,
        typer.Option(
            "--landcover",
            help="Land-cover raster: a file, a folder of tiles, a quoted glob, a GDAL path or URL "
            "(/vsizip/, /vsicurl/, s3://, https://), NetCDF/Zarr, or sample:modis-igbp; "
            "repeat for several tiles.",
        ),
    ] = None,
    landcover_band: Annotated[
        str | None,
        typer.Option("--landcover-band", help="Band of a multi-band raster: N (1-based) or NAME."),
    ] = None,
    landcover_var: Annotated[
        str | None,
        typer.Option("--landcover-var", help="Data variable of a NetCDF/Zarr land-cover map."),
    ] = None,
    landcover_crs: Annotated[
        str | None,
        typer.Option(
            "--landcover-crs", help="CRS of a land-cover map that has none (e.g. EPSG:4326)."
        ),
    ] = None,
    landcover_legend: Annotated[
        str | None,
        typer.Option(
            "--landcover-legend",
            help=f"{', '.join(list_legends('landcover'))}, or a JSON/CSV file.",
        ),
    ] = None,
    climate: Annotated[
        list[str] | None,
        typer.Option(
            "--climate",
            help="Köppen-Geiger map: a file (GeoTIFF, NetCDF, Zarr), tiles, a GDAL path or URL, "
            "or sample:koppen-rubel; repeat for several tiles.",
        ),
    ] = None,
    climate_band: Annotated[
        str | None,
        typer.Option("--climate-band", help="Band of a multi-band climate map: N or NAME."),
    ] = None,
    climate_var: Annotated[
        str | None,
        typer.Option("--climate-var", help="Data variable of a NetCDF/Zarr climate map."),
    ] = None,
    climate_crs: Annotated[
        str | None,
        typer.Option("--climate-crs", help="CRS of a climate map that has none."),
    ] = None,
    climate_legend: Annotated[
        str | None,
        typer.Option(
            "--climate-legend", help=f"{', '.join(list_legends('climate'))}, or a JSON/CSV file."
        ),
    ] = None,
    id_column: Annotated[
        str, typer.Option("--id-column", help="Id column of a vector source.")
    ] = BuildInputs.id_column,
    labels_column: Annotated[
        str | None,
        typer.Option("--labels-column", help="Column of a vector source holding labels."),
    ] = BuildInputs.labels_column,
    layer: Annotated[
        str | None,
        typer.Option("--layer", help="Layer of a multi-layer footprint file (GeoPackage...)."),
    ] = BuildInputs.layer,
    crs: Annotated[
        str | None,
        typer.Option(
            "--crs", help="CRS of footprints that carry none (a CSV WKT column); lon/lat = 4326."
        ),
    ] = BuildInputs.crs,
    point_size: Annotated[
        float | None,
        typer.Option(
            "--point-size",
            min=0.0,
            help="Point footprints become squares of this many metres in their UTM zone.",
        ),
    ] = BuildInputs.point_size,
    dissolve_ids: Annotated[
        bool,
        typer.Option(
            "--dissolve-ids", help="Merge rows sharing an id (tiles split at the antimeridian)."
        ),
    ] = BuildInputs.dissolve_ids,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes.")
    ] = _EXECUTION.workers,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out (and its cut masks).")
    ] = False,
    masks: Annotated[
        Path | None,
        typer.Option(
            "--masks",
            help="Folder of label rasters named <patch_id>[_reference_map|_mask].tif -> mask_path.",
            file_okay=False,
        ),
    ] = None,
    masks_from_landcover: Annotated[
        bool,
        typer.Option(
            "--masks-from-landcover",
            help="Cut --landcover onto each patch's S2 grid (nearest) into <out stem>_masks/.",
        ),
    ] = False,
    dask_scheduler: Annotated[
        str | None,
        typer.Option(
            "--dask-scheduler", help="Dask scheduler address (tcp://host:8786); same output."
        ),
    ] = _EXECUTION.dask_scheduler,
    raster_memory: Annotated[
        float,
        typer.Option(
            "--raster-memory",
            min=0,
            help="MB per worker for rasters read whole into memory (smaller ones first; the rest by windows).",
        ),
    ] = _EXECUTION.raster_memory_mb,
    n: Annotated[
        int | None,
        typer.Option("--n", min=1, help="Select this many rows.", rich_help_panel=_SAMPLING),
    ] = _OPTIONS.n,
    strategy: Annotated[
        StrategyName,
        typer.Option("--strategy", help="Sampling strategy.", rich_help_panel=_SAMPLING),
    ] = StrategyName(_OPTIONS.strategy),
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            help="Stratum budget ~ size**alpha (1 proportional, 0 equal).",
            rich_help_panel=_SAMPLING,
        ),
    ] = _OPTIONS.alpha,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed.", rich_help_panel=_SAMPLING)
    ] = _OPTIONS.seed,
    climate_level: Annotated[
        ClimateLevel,
        typer.Option(
            "--climate-level", help="symbol (Cfb) or group (C).", rich_help_panel=_SAMPLING
        ),
    ] = _OPTIONS.climate_level,
    landcover_groups: Annotated[
        str | None,
        typer.Option(
            "--landcover-groups",
            help="JSON/CSV mapping land-cover codes to groups.",
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    min_valid_frac: Annotated[
        float,
        typer.Option(
            "--min-valid-frac", help="Drop rows with less valid area.", rich_help_panel=_SAMPLING
        ),
    ] = _OPTIONS.min_valid_frac,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            help="Filter on manifest columns, e.g. \"lc_40 > 0.5 and kg_major in ['Dfb', 'Dfc']\" (comparisons, and/or/not, in [..], isna(), arithmetic; see csmoe_data.where).",
            rich_help_panel=_SAMPLING,
        ),
    ] = _OPTIONS.where,
    min_distance: Annotated[
        float | None,
        typer.Option(
            "--min-distance", help="Metres between selected footprints.", rich_help_panel=_SAMPLING
        ),
    ] = _OPTIONS.min_distance,
    pool: Annotated[
        str | None,
        typer.Option(
            "--pool",
            help="Sample this existing manifest instead of computing descriptors.",
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="e.g. train=0.8,val=0.1,test=0.1 (spatially blocked).",
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    split_block_size: Annotated[
        float | None,
        typer.Option(
            "--split-block-size",
            help="Metres; cell size of the split block grid (default: from the footprint size).",
            rich_help_panel=_SAMPLING,
        ),
    ] = None,
    pair_with: Annotated[
        Path | None,
        typer.Option(
            "--pair-with",
            help="The other sensor's Major TOM metadata: pair S1 and S2 products by grid cell.",
            rich_help_panel=_MAJORTOM,
        ),
    ] = _MT.pair_with,
    pair_max_days: Annotated[
        float | None,
        typer.Option(
            "--pair-max-days",
            min=0,
            help="Pair only acquisitions at most this many days apart (default: nearest, any gap).",
            rich_help_panel=_MAJORTOM,
        ),
    ] = _MT.pair_max_days,
    paired_only: Annotated[
        bool,
        typer.Option(
            "--paired-only",
            help="Drop products without a partner (training needs both sensors).",
            rich_help_panel=_MAJORTOM,
        ),
    ] = _MT.paired_only,
    imagery_root: Annotated[
        Path | None,
        typer.Option(
            "--imagery-root",
            help="Where the shards or the unpacked tree lie (default: each metadata file's folder).",
            rich_help_panel=_MAJORTOM,
        ),
    ] = _MT.imagery_root,
    tile_size: Annotated[
        int,
        typer.Option(
            "--tile-size",
            min=0,
            help="Cut products into tiles of this many 10 m px, a multiple of 6 (0: whole products).",
            rich_help_panel=_MAJORTOM,
        ),
    ] = _MT.tile_size or 0,
) -> None:
    """Compute land-cover and Köppen-Geiger descriptors for every footprint; write a GeoParquet manifest.

    Without --n every footprint is kept; with --n, --split or --where the rows are sampled.
    """
    masks_dir = _check_masks(out, footprints, landcover, masks, masks_from_landcover, overwrite)
    options = None
    if n is not None or split is not None or where is not None or pool is not None:
        options = _sampling_options(
            n,
            strategy,
            alpha,
            seed,
            climate_level,
            landcover_groups,
            min_valid_frac,
            where,
            min_distance,
            split,
            split_block_size,
        )
    if pool is not None:
        from csmoe_data.builder.sample import sample_pool

        given = (
            ("--footprints", footprints),
            ("--landcover", landcover),
            ("--climate", climate),
        )
        extra = [name for name, value in given if value]
        if extra:
            raise fail(f"--pool samples an existing manifest; drop {', '.join(extra)}")
        _summary(sample_pool(pool, out, options, overwrite=overwrite))
        _add_masks(out, masks_dir, None, overwrite)
        return
    if footprints is None:
        raise fail("--footprints is required (or --pool to sample an existing manifest)")
    from csmoe_data.builder.pipeline import build_manifest

    inputs = BuildInputs(
        footprints=footprints,
        landcover=_one_or_many(landcover),
        landcover_legend=landcover_legend,
        climate=_one_or_many(climate),
        climate_legend=climate_legend,
        id_column=id_column,
        labels_column=labels_column,
        landcover_band=landcover_band,
        landcover_var=landcover_var,
        landcover_crs=landcover_crs,
        climate_band=climate_band,
        climate_var=climate_var,
        climate_crs=climate_crs,
        layer=layer,
        crs=crs,
        point_size=point_size,
        dissolve_ids=dissolve_ids,
        majortom=MajorTomOptions(pair_with, pair_max_days, paired_only, imagery_root, tile_size),
    )
    execution = ExecutionOptions(
        workers=workers, dask_scheduler=dask_scheduler, raster_memory_mb=raster_memory
    )
    _summary(build_manifest(inputs, out, execution, sampling=options, overwrite=overwrite))
    _add_masks(
        out, masks_dir, landcover[0] if masks_from_landcover and landcover else None, overwrite
    )


def _check_masks(
    out: Path,
    footprints: str | None,
    landcover: list[str] | None,
    masks: Path | None,
    from_landcover: bool,
    overwrite: bool,
) -> Path | None:
    """The folder of label rasters to match (``--masks``, or a reBEN root's Reference_Maps).

    Checked before any work, so that a refused mask option leaves no manifest behind.
    """
    from csmoe_data.masks import mask_folder, reference_maps

    if masks is not None and from_landcover:
        raise fail("give --masks DIR or --masks-from-landcover, not both")
    if masks is not None and not masks.is_dir():
        raise fail(f"--masks {masks}: no such folder")
    if from_landcover:
        if not landcover:
            raise fail("--masks-from-landcover needs --landcover")
        if len(landcover) > 1:
            raise fail(
                "--masks-from-landcover cuts one --landcover raster; give one (or a VRT of the tiles)"
            )
        folder = mask_folder(out)
        if folder.is_dir() and any(folder.iterdir()) and not overwrite:
            raise fail(f"{folder} holds masks already; pass --overwrite to replace them")
        return None
    if masks is None and footprints is not None and Path(footprints).is_dir():
        return reference_maps(footprints)  # BigEarthNet v2.0: CORINE reference maps for free
    return masks


def _add_masks(out: Path, masks_dir: Path | None, landcover: str | None, overwrite: bool) -> None:
    if masks_dir is None and landcover is None:
        return
    from csmoe_data.masks import add_masks

    summary = add_masks(out, masks_dir=masks_dir, landcover=landcover, overwrite=overwrite)
    console.print(
        f"mask_path: {summary.with_mask:,} of {summary.rows:,} rows from {summary.source} "
        f"(masks in {summary.folder})",
        highlight=False,
        soft_wrap=True,
    )
