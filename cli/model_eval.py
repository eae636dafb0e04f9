"""CLI commands: ``csmoe embed`` and ``csmoe eval retrieval|probe``."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from csmoe_cli._common import console, err_console, user_errors
from csmoe_cli.model_finetune import segment_cmd
from csmoe_cli.model_options import DataRootOpt, DeviceOpt, OverwriteOpt, ProgressOpt
from csmoe_model.eval.options import (
    CURVE_K,
    EMBED_BATCH_SIZE,
    EMBED_WORKERS,
    PROBE_CS,
    PROBE_KNN_K,
    PROBE_SENSOR,
    RETRIEVAL_CHUNK_SIZE,
    RETRIEVAL_K,
    ProbeSensor,
)

app = typer.Typer()

eval_app = typer.Typer(
    name="eval",
    help="Evaluate embeddings: retrieval within and across sensors, linear and kNN probes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EmbeddingsOpt = Annotated[
    Path,
    typer.Option(
        "--embeddings",
        "-e",
        help="Embeddings Parquet written by `csmoe embed`.",
        dir_okay=False,
    ),
]
LabelsOpt = Annotated[
    str | None,
    typer.Option(
        "--labels-column",
        help="List column with the labels (default: labels19 if present, else labels).",
    ),
]
JsonOpt = Annotated[
    Path | None, typer.Option("--json", help="Write the report as JSON here.", dir_okay=False)
]
MarkdownOpt = Annotated[
    Path | None,
    typer.Option(
        "--markdown",
        help="Write a Markdown table here (default with --json: beside it, suffix .md).",
        dir_okay=False,
    ),
]


class Normalization(StrEnum):
    """Which statistics ``csmoe embed`` normalises with."""

    stored = "stored"
    manifest = "manifest"


@contextlib.contextmanager
def _progress(enabled: bool, unit: str) -> Iterator[Callable[[str, int, int], None] | None]:
    """Yield ``update(label, done, total)`` drawing one progress bar per label, or ``None``.

    Each label gets its own :func:`csmoe_common.progress.progress_bar` (opened at its first
    update, closed when the next label starts or at the end).
    """
    if not enabled:
        yield None
        return
    from csmoe_common.progress import progress_bar

    with contextlib.ExitStack() as stack:
        state: dict[str, Any] = {"label": None, "advance": None, "done": 0}

        def update(label: str, done: int, total: int) -> None:
            if label != state["label"]:
                stack.close()
                state["advance"] = stack.enter_context(
                    progress_bar(label, total, unit, enabled=True, transient=False)
                )
                state["label"], state["done"] = label, 0
            state["advance"](done - state["done"])
            state["done"] = done

        yield update


def _report_paths(
    json_path: Path | None, md_path: Path | None, overwrite: bool, *more: Path
) -> tuple[Path | None, Path | None]:
    """Resolve the Markdown path and check every output before any work is done.

    A refusal (existing file without --overwrite) then costs nothing and leaves nothing half-written.
    """
    from csmoe_common.atomic import check_output_path

    if md_path is None and json_path is not None:
        md_path = json_path.with_suffix(".md")
    for p in (json_path, md_path, *more):
        if p is not None:
            check_output_path(p, overwrite)
    return json_path, md_path


def _write_reports(
    data: dict[str, Any],
    markdown: str,
    json_path: Path | None,
    md_path: Path | None,
    overwrite: bool,
) -> None:
    from csmoe_common.atomic import write_json, write_text

    if json_path is not None:
        write_json(json_path, data, overwrite)
        console.print(f"wrote {json_path}", soft_wrap=True)
    if md_path is not None:
        write_text(md_path, markdown, overwrite)
        console.print(f"wrote {md_path}", soft_wrap=True)


@eval_app.command("retrieval")
@user_errors
def retrieval(
    embeddings: EmbeddingsOpt,
    labels_column: LabelsOpt = None,
    k: Annotated[
        int, typer.Option("--k", help="Cut-off: items retrieved per query.")
    ] = RETRIEVAL_K,
    queries: Annotated[
        str | None, typer.Option("--queries", help="Split of the queries (default: all rows).")
    ] = None,
    archive: Annotated[
        str | None, typer.Option("--archive", help="Split of the archive (default: all rows).")
    ] = None,
    json_path: JsonOpt = None,
    markdown_path: MarkdownOpt = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots", help="Folder for precision@k and mAP@k curves (PNG).", file_okay=False
        ),
    ] = None,
    plot_k: Annotated[
        int, typer.Option("--plot-k", help="Largest k of the curves drawn with --plots.")
    ] = CURVE_K,
    device: DeviceOpt = "auto",
    chunk_size: Annotated[
        int,
        typer.Option("--chunk-size", help="Queries per similarity chunk (memory bound)."),
    ] = RETRIEVAL_CHUNK_SIZE,
    progress: ProgressOpt = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """Retrieval S1->S1, S2->S2, S1->S2, S2->S1: mAP, precision, recall and F1 at k.

    Relevance: query and item share at least one label. Cosine similarity, exact search; the query itself is never retrieved.
    """
    from csmoe_model.eval.embeddings import read_embeddings
    from csmoe_model.eval.report import (
        PLOT_FILES,
        plot_precision_curves,
        retrieval_markdown,
        retrieval_rich_table,
    )
    from csmoe_model.eval.retrieval import evaluate_retrieval

    plot_paths = [plots / f for f in PLOT_FILES] if plots is not None else []
    json_path, markdown_path = _report_paths(json_path, markdown_path, overwrite, *plot_paths)
    emb = read_embeddings(embeddings)
    with _progress(progress, "queries") as update:
        report = evaluate_retrieval(
            emb,
            labels_column=labels_column,
            k=k,
            queries=queries,
            archive=archive,
            curve_k=plot_k if plots is not None else None,
            device=device,
            chunk_size=chunk_size,
            progress=(lambda d, n, t: update(f"search {d}", n, t)) if update else None,
        )
    console.print(retrieval_rich_table(report))
    if report.meta["skipped"]:
        err_console.print(
            f"note: skipped {', '.join(report.meta['skipped'])} (no embeddings for that sensor)",
            soft_wrap=True,
        )
    for warning in report.meta.get("warnings", []):
        err_console.print(f"warning: {warning}", soft_wrap=True, highlight=False)
    _write_reports(
        report.to_dict(), retrieval_markdown(report), json_path, markdown_path, overwrite
    )
    if plots is not None:
        for f in plot_precision_curves(report, plots, overwrite):
            console.print(f"wrote {f}", soft_wrap=True)


def _c_grid(text: str) -> tuple[float, ...]:
    """The ``--c-values`` grid: comma-separated finite numbers > 0.

    Raises:
        typer.BadParameter: an item is empty, not a number, not finite or not > 0 (a usage
            error: one line naming the item, exit 2).
    """
    grid = []
    for item in text.split(","):
        try:
            c = float(item)
        except ValueError:
            c = math.nan
        if not (math.isfinite(c) and c > 0):
            raise typer.BadParameter(
                f"{item.strip()!r} is not a finite number > 0 (give a grid such as 0.1,1,10)",
                param_hint="--c-values",
            )
        grid.append(c)
    return tuple(grid)


@eval_app.command("probe")
@user_errors
def probe(
    embeddings: EmbeddingsOpt,
    labels_column: LabelsOpt = None,
    sensor: Annotated[
        ProbeSensor, typer.Option("--sensor", help="Embeddings to classify (both: concatenated).")
    ] = PROBE_SENSOR,
    knn_k: Annotated[
        int, typer.Option("--knn-k", min=1, help="Neighbours of the kNN classifier.")
    ] = PROBE_KNN_K,
    c_values: Annotated[
        str | None,
        typer.Option(
            "--c-values",
            help="Comma-separated C grid for the linear probe "
            f"(default {','.join(f'{c:g}' for c in PROBE_CS)}).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random state of the solver.")] = 0,
    json_path: JsonOpt = None,
    markdown_path: MarkdownOpt = None,
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """Multi-label classification on frozen embeddings: linear probe and kNN, macro/micro mAP and F1.

    Trains on split train, chooses the regularisation on val, reports on test.
    """
    from csmoe_model.eval.embeddings import read_embeddings
    from csmoe_model.eval.probe import evaluate_probe
    from csmoe_model.eval.report import probe_markdown, probe_rich_table

    cs = PROBE_CS if c_values is None else _c_grid(c_values)
    json_path, markdown_path = _report_paths(json_path, markdown_path, overwrite)
    emb = read_embeddings(embeddings)
    with _progress(progress, "C") as update:
        report = evaluate_probe(
            emb,
            labels_column=labels_column,
            sensor=sensor.value,
            knn_k=knn_k,
            cs=cs,
            seed=seed,
            device=device,
            progress=(lambda n, t: update("linear probe, C grid", n, t)) if update else None,
        )
    console.print(probe_rich_table(report))
    for warning in report.meta.get("warnings", []):
        err_console.print(f"warning: {warning}", soft_wrap=True, highlight=False)
    missing = report.linear.get("classes_without_positives") or []
    if missing:
        err_console.print(
            f"note: classes without positives in test: {', '.join(missing)}", soft_wrap=True
        )
    _write_reports(report.to_dict(), probe_markdown(report), json_path, markdown_path, overwrite)


@app.command("embed")
@user_errors
def embed(
    manifest: Annotated[
        Path,
        typer.Option("--manifest", "-m", help="Manifest with s1_path and s2_path.", dir_okay=False),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Embeddings Parquet to write.", dir_okay=False)
    ],
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="Run folder of `csmoe train` (config.json, model.safetensors).",
            file_okay=False,
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights", help="Encoder weights (.safetensors), with --model.", dir_okay=False
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model preset of --weights (`csmoe model-info` lists them)."),
    ] = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Pairs per forward pass.")
    ] = EMBED_BATCH_SIZE,
    split: Annotated[
        str | None, typer.Option("--split", help="Embed only this split (default: all rows).")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Imagery cache folder (default as training: $CSMOE_CACHE_DIR or ~/.cache/csmoe).",
            file_okay=False,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", help="Loader and cache-decoding processes (0: in-process)."),
    ] = EMBED_WORKERS,
    labels_column: Annotated[
        list[str] | None,
        typer.Option(
            "--labels-column", help="Further list column(s) to copy (labels, labels19 always)."
        ),
    ] = None,
    normalization: Annotated[
        Normalization,
        typer.Option(
            "--normalization",
            help="stored: the statistics the run or the weights file carries; manifest: the "
            "target manifest's (its train rows), e.g. for weights without statistics.",
        ),
    ] = Normalization.stored,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars.")
    ] = True,
    overwrite: OverwriteOpt = False,
    season: Annotated[
        int,
        typer.Option(
            "--season", min=0, help="Season embedded from a seasonal cache (SSL4EO-S12: 0..3)."
        ),
    ] = 0,
    data_root: DataRootOpt = None,
) -> None:
    """Embed a manifest's S1 and S2 imagery (each sensor alone) with a trained encoder.

    Writes one row per manifest row: patch_id, split, label columns, emb_s1, emb_s2.
    """
    from csmoe_model.eval.embed import embed_manifest

    summary = embed_manifest(
        manifest,
        out,
        run=run,
        weights=weights,
        model=model,
        device=device,
        batch_size=batch_size,
        split=split,
        cache_dir=cache_dir,
        workers=workers,
        labels_columns=labels_column or (),
        normalization=normalization.value,
        overwrite=overwrite,
        progress=progress,
        season=season,
        data_root=data_root,
    )
    rate = summary.embedded / summary.seconds if summary.seconds > 0 else float("nan")
    console.print(
        f"wrote {summary.out}: {summary.rows} rows ({summary.embedded} embedded, "
        f"{summary.skipped} damaged), {summary.dim}-d, model {summary.model} on {summary.device}, "
        f"{rate:,.0f} pairs/s",
        soft_wrap=True,
    )


# `eval segment` trains a head, so it lives with `finetune` (csmoe_cli.model_finetune)
eval_app.command("segment")(user_errors(segment_cmd))
app.add_typer(eval_app, name="eval")
