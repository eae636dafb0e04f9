"""CLI command ``csmoe-data stats``: how representative and diverse a sampled manifest is."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from csmoe_cli._common import console, err_console, fail, user_errors

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


class Baseline(StrEnum):
    """What ``--baseline`` puts beside the sample."""

    random = "random"


def _mark(winner: str | None) -> str:
    return {"sample": "[green]sample[/]", "baseline": "[red]baseline[/]", "tie": "tie"}.get(
        winner or "", "-"
    )


def _eligibility_table(breakdown: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(
        title=f"pool eligibility: {breakdown['eligible']:,} of {breakdown['pool_rows']:,} rows",
        title_justify="left",
    )
    table.add_column("condition")
    table.add_column("rows failing", justify="right")
    table.add_column("failing only this", justify="right")
    for c in breakdown["conditions"]:
        style = "yellow" if c["failing"] else ""
        table.add_row(
            c["condition"],
            f"[{style}]{c['failing']:,}[/]" if style else "0",
            f"{c['failing_only_this']:,}",
        )
    if not breakdown["conditions"]:
        table.caption = "no conditions apply (no recorded filters, no geometry)"
    return table


def _split_table(
    title: str, per_split: dict[str, Any], key: str, prefix: str, names: dict[str, str], top: int
) -> Any:
    """Rich table: mean fraction of each class in every split."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("class")
    splits = list(per_split)
    for name in splits:
        table.add_column(f"{name} ({per_split[name]['rows']:,})", justify="right")
    cols = list(next(iter(per_split.values()))[key]) if per_split else []
    total = {c: sum(per_split[s][key][c] * per_split[s]["rows"] for s in splits) for c in cols}
    order = sorted(cols, key=lambda c: -total[c])
    for col in order[:top]:
        code = col[len(prefix) :]
        label = f"{code} {names[col]}" if col in names and prefix == "lc_" else code
        table.add_row(label, *(f"{per_split[s][key][col]:.3f}" for s in splits))
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
    baseline: Annotated[
        Baseline | None,
        typer.Option(
            "--baseline",
            help="Put the sample beside a seeded random sample of the same size from the same eligible pool rows.",
        ),
    ] = None,
    baseline_seed: Annotated[
        int, typer.Option("--baseline-seed", help="Seed of the --baseline random sample.", min=0)
    ] = 0,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare", help="Put the sample beside this other sampled manifest instead."
        ),
    ] = None,
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
    --min-valid-frac and --where applied, footprints with valid coordinates; see
    --all-pool-rows), and the table says how many rows fail each condition. Each figure's
    better direction is marked; --baseline random or --compare puts another sample beside it.
    """
    from rich.table import Table

    from csmoe_common.atomic import check_output_folder, check_output_path, write_text
    from csmoe_data.plots import legend_info, make_plots
    from csmoe_data.sampling.eligibility import eligibility_breakdown
    from csmoe_data.stats import (
        BETTER,
        RECORDED_WHERE,
        compare_figures,
        compute_stats,
        eligibility_options,
        eligible_pool,
        pool_path_from_metadata,
        random_baseline,
        split_distributions,
    )

    if baseline is not None and compare is not None:
        raise fail("give --baseline or --compare, not both")
    if json_out is not None:
        check_output_path(json_out, overwrite)  # fail before the work, not after
    if plots is not None:
        check_output_folder(plots)
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
    if baseline is not None and pool_df is None:
        raise fail(
            "--baseline random needs the pool the sample was drawn from: give --pool "
            "(the manifest's metadata names none that exists)"
        )
    pool_total = None if pool_df is None else len(pool_df)
    breakdown = None
    if pool_df is not None:
        breakdown = eligibility_breakdown(
            pool_df, eligibility_options(meta.get("sampling")), RECORDED_WHERE
        )
        if not all_rows:
            pool_df = eligible_pool(pool_df, meta.get("sampling"))
    figures = compute_stats(sample, pool_df)
    if not figures["landcover_mean"] and not figures["climate_mean"]:
        err_console.print(
            f"warning: {manifest} has no land-cover or climate fraction columns (lc_<code>, "
            "kg_<class>): only rows and splits mean anything here; describe its footprints with "
            "csmoe-data build-manifest",
            highlight=False,
            soft_wrap=True,
        )
    figures["better"] = dict(BETTER)
    figures["eligibility"] = breakdown
    figures["split_distributions"] = split_distributions(
        sample, sample if pool_df is None else pool_df
    )
    baseline_df = None
    if baseline is not None and pool_df is not None:
        baseline_df = random_baseline(pool_df, len(sample), baseline_seed)
        label = f"random (seed {baseline_seed})"
        figures["baseline"] = {
            "kind": "random",
            "seed": baseline_seed,
            **compute_stats(baseline_df, pool_df),
        }
    elif compare is not None:
        baseline_df, _ = _read(compare)
        label = compare.name
        figures["baseline"] = {
            "kind": "manifest",
            "path": str(compare),
            **compute_stats(baseline_df, sample if pool_df is None else pool_df),
        }
    if baseline_df is not None:
        figures["comparison"] = compare_figures(figures, figures["baseline"])
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

    if breakdown is not None:
        console.print(_eligibility_table(breakdown))

    quality = Table(title="quality (vs pool)", title_justify="left")
    quality.add_column("figure")
    quality.add_column("sample", justify="right")
    if baseline_df is not None:
        quality.add_column(label, justify="right")
    quality.add_column("better")
    if baseline_df is not None:
        quality.add_column("better here")
    for key, direction in BETTER.items():
        arrow = "higher ↑" if direction == "higher" else "lower ↓"
        if baseline_df is not None:
            c = figures["comparison"][key]
            quality.add_row(key, _fmt(figures[key]), _fmt(c["baseline"]), arrow, _mark(c["winner"]))
        else:
            quality.add_row(key, _fmt(figures[key]), arrow)
    if baseline_df is not None:
        base = figures["baseline"]
        quality.caption = (
            f"strata covered: sample {figures['strata_sample']} / {figures['strata_pool']}, "
            f"{label} {base['strata_sample']} / {base['strata_pool']}"
        )
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

    per_split = figures["split_distributions"]
    if len(per_split) > 1:
        console.print(
            _split_table(
                "climate by split (mean fraction)", per_split, "climate_mean", "kg_", names, top
            )
        )
        console.print(
            _split_table(
                "land cover by split (mean fraction)",
                per_split,
                "landcover_mean",
                "lc_",
                names,
                top,
            )
        )

    if plots is not None:
        written = make_plots(
            sample,
            pool_df,
            plots,
            {**pool_meta, **meta},
            overwrite=overwrite,
            baseline=baseline_df,
            baseline_label=label if baseline_df is not None else None,
            figures=figures,
        )
        figures["plots"] = [str(p) for p in written]
        console.print(f"wrote {len(written)} figures to {plots}")
    if json_out is not None:
        write_text(json_out, json.dumps(figures, indent=2) + "\n", overwrite=overwrite)
        console.print(f"wrote {json_out}")
