"""CLI command ``csmoe-data stats``: how representative and diverse a sampled manifest is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from csmoe_cli._common import console, err_console, user_errors

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd
    from rich.table import Table

app = typer.Typer()


def _read(path: Path) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    from csmoe_data.manifest import read_manifest
    from csmoe_data.samples import resolve_path

    return read_manifest(resolve_path(path))


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _distribution_table(
    title: str,
    means: dict[str, dict[str, float]],
    sample: pd.DataFrame,
    pool: pd.DataFrame,
    major: str,
    names: dict[str, str],
    top: int,
) -> Table:
    """Rich table: mean fraction and majority rows of each class, sample next to pool."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("class")
    for col in ("sample mean", "pool mean", "sample rows (majority)", "pool rows (majority)"):
        table.add_column(col, justify="right")
    prefix = "lc_" if major == "lc_major" else "kg_"
    s_major = sample[major].astype(str).value_counts() if major in sample.columns else {}
    p_major = pool[major].astype(str).value_counts() if major in pool.columns else {}
    order = sorted(means, key=lambda c: -means[c]["pool"])
    for col in order[:top]:
        key = col[len(prefix) :]
        label = f"{key} {names[col]}" if col in names and prefix == "lc_" else key
        table.add_row(
            label,
            f"{means[col]['sample']:.3f}",
            f"{means[col]['pool']:.3f}",
            f"{int(s_major.get(key, 0)):,}",
            f"{int(p_major.get(key, 0)):,}",
        )
    if len(order) > top:
        table.caption = f"{len(order) - top} smaller classes not shown (--top)"
    return table


@app.command("stats")
@user_errors
def stats(
    manifest: Annotated[Path, typer.Argument(help="A sampled manifest (GeoParquet).")],
    pool: Annotated[
        Path | None,
        typer.Option(
            "--pool",
            help="The pool it was sampled from (default: the pool named in its metadata, else the manifest itself).",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the figures as JSON here.")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Write PNG figures into this folder.")
    ] = None,
    all_rows: Annotated[
        bool,
        typer.Option(
            "--all-pool-rows",
            help="Judge against every pool row, not only those passing the recorded --min-valid-frac/--where.",
        ),
    ] = False,
    top: Annotated[
        int, typer.Option("--top", help="Classes shown per distribution table.", min=1)
    ] = 20,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing --json / --plots outputs.")
    ] = False,
) -> None:
    """Report rows, splits, class distributions and quality figures of a sampled manifest.

    Quality figures (defined in csmoe_data.stats): strata coverage, k-center mean/max radius of
    the pool to the sample, land-cover and climate JS divergence (base 2), normalised strata
    entropy (entropy of the sample's strata / log of the pool's strata count; the evenness over
    the strata present is shown as strata_evenness) and, per class, the selected rows where it
    covers >= 5%. By default the pool is the rows the sampler could choose (the recorded
    --min-valid-frac and --where applied; see --all-pool-rows).
    """
    from rich.table import Table

    from csmoe_common.atomic import check_output_path, write_text
    from csmoe_data.plots import legend_info, make_plots
    from csmoe_data.stats import compute_stats, eligible_pool, pool_path_from_metadata

    if json_out is not None:
        check_output_path(json_out, overwrite)  # fail before the work, not after
    sample, meta = _read(manifest)
    refused: list[Path] = []
    pool_path = pool if pool is not None else pool_path_from_metadata(meta, manifest, refused)
    if pool_path is None and refused:
        err_console.print(
            f"note: the manifest names the pool {refused[0]}, outside its folder; a path read "
            "from a file is not followed: pass --pool to use it (judging against the sample itself)",
            highlight=False,
            soft_wrap=True,
        )
    if pool_path is not None:
        pool_df, pool_meta = _read(pool_path)
    else:
        pool_df, pool_meta = None, {}
    pool_total = None if pool_df is None else len(pool_df)
    if pool_df is not None and not all_rows:
        pool_df = eligible_pool(pool_df, meta.get("sampling"))
    figures = compute_stats(sample, pool_df)
    figures["pool_rows_total"] = pool_total
    figures["manifest"] = str(manifest)
    figures["pool"] = str(pool_path) if pool_path is not None else None
    if isinstance(meta.get("sampling"), dict):
        figures["sampling"] = {
            k: meta["sampling"].get(k) for k in ("strategy", "seed", "pool_size", "pool_checksum")
        }

    pool_view = sample if pool_df is None else pool_df
    _, names = legend_info({**pool_meta, **meta})
    summary = Table(title=f"{manifest}", title_justify="left", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("rows (sample)", _fmt(figures["rows"]))
    if pool_df is None:
        summary.add_row("rows (pool)", f"{figures['pool_rows']:,} (no pool: the sample itself)")
    elif pool_total != figures["pool_rows"]:
        summary.add_row("rows (pool)", f"{figures['pool_rows']:,} eligible of {pool_total:,}")
    else:
        summary.add_row("rows (pool)", _fmt(figures["pool_rows"]))
    summary.add_row(
        "strata (sample / pool)", f"{figures['strata_sample']} / {figures['strata_pool']}"
    )
    for name, count in figures["splits"].items():
        summary.add_row(f"split {name}", _fmt(count))
    if "sampling" in figures:
        summary.add_row(
            "strategy (seed)", f"{figures['sampling']['strategy']} ({figures['sampling']['seed']})"
        )
    console.print(summary)

    quality = Table(title="quality (vs pool)", title_justify="left")
    quality.add_column("figure")
    quality.add_column("value", justify="right")
    for key in (
        "strata_coverage",
        "kcenter_mean_radius",
        "kcenter_max_radius",
        "landcover_js_divergence",
        "climate_js_divergence",
        "normalized_entropy",
        "strata_evenness",
    ):
        quality.add_row(key, _fmt(figures[key]))
    console.print(quality)
    console.print(
        _distribution_table(
            "climate", figures["climate_mean"], sample, pool_view, "kg_major", names, top
        )
    )
    console.print(
        _distribution_table(
            "land cover", figures["landcover_mean"], sample, pool_view, "lc_major", names, top
        )
    )

    if plots is not None:
        written = make_plots(sample, pool_df, plots, {**pool_meta, **meta}, overwrite=overwrite)
        figures["plots"] = [str(p) for p in written]
        console.print(f"wrote {len(written)} figures to {plots}")
    if json_out is not None:
        write_text(json_out, json.dumps(figures, indent=2) + "\n", overwrite=overwrite)
        console.print(f"wrote {json_out}")
