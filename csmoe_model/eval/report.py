"""Reports of ``csmoe eval``: Markdown tables, rich tables for the terminal, precision-at-k plots.

rich and matplotlib are imported inside the functions: a training host may lack matplotlib, and
only ``--plots`` needs it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from csmoe_common.atomic import atomic_output, check_output_path, new_folder
from csmoe_model.eval.probe import SUMMARY, ProbeReport
from csmoe_model.eval.retrieval import METRICS, RetrievalReport

__all__ = [
    "PLOT_FILES",
    "plot_precision_curves",
    "probe_markdown",
    "probe_rich_table",
    "retrieval_markdown",
    "retrieval_rich_table",
]

#: files written by :func:`plot_precision_curves`
PLOT_FILES: tuple[str, ...] = ("precision_at_k.png", "map_at_k.png")
_PRETTY = {"map": "mAP", "precision": "P", "recall": "R", "f1": "F1"}
_PROBE_PRETTY = {
    "macro_map": "macro mAP",
    "micro_map": "micro mAP",
    "macro_f1": "macro F1",
    "micro_f1": "micro F1",
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100 * float(value):.2f}"


def _retrieval_rows(report: RetrievalReport) -> tuple[list[str], list[list[str]]]:
    header = ["direction", *[f"{_PRETTY[m]}@{report.k}" for m in METRICS], "queries", "archive"]
    rows = []
    for d, m in report.metrics.items():
        c = report.counts[d]
        rows.append(
            [
                d.replace("s1", "S1").replace("s2", "S2"),
                *[_fmt(m[f"{x}@{report.k}"]) for x in METRICS],
                str(c["queries"]),
                str(c["archive"]),
            ]
        )
    return header, rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def retrieval_markdown(report: RetrievalReport) -> str:
    """Markdown table of the retrieval metrics (in percent) with a short provenance line."""
    header, rows = _retrieval_rows(report)
    meta = report.meta
    intro = (
        f"Retrieval at k = {report.k} (values in %): queries {meta.get('queries')}, archive "
        f"{meta.get('archive')}, labels `{meta.get('labels_column')}`, cosine similarity, "
        "the query itself excluded.\n\n"
    )
    return intro + _markdown_table(header, rows)


def retrieval_rich_table(report: RetrievalReport) -> Any:
    """A rich Table of the retrieval metrics (in percent)."""
    from rich.table import Table

    header, rows = _retrieval_rows(report)
    table = Table(
        title=f"Retrieval at k = {report.k} (%), labels {report.meta.get('labels_column')}"
    )
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def _probe_rows(report: ProbeReport) -> tuple[list[str], list[list[str]]]:
    header = ["classifier", *[_PROBE_PRETTY[m] for m in SUMMARY]]
    lin = report.linear
    rows = [
        [f"linear (C = {lin.get('C'):g})", *[_fmt(lin.get(m)) for m in SUMMARY]],
        [f"kNN (k = {report.knn.get('k')})", *[_fmt(report.knn.get(m)) for m in SUMMARY]],
    ]
    return header, rows


def probe_markdown(report: ProbeReport) -> str:
    """Markdown table of the probe metrics on test (in percent)."""
    header, rows = _probe_rows(report)
    meta = report.meta
    r = meta.get("rows", {})
    intro = (
        f"Multi-label classification on frozen `{meta.get('sensor')}` embeddings (values in %), "
        f"labels `{meta.get('labels_column')}`, train {r.get('train')} / val {r.get('val')} / "
        f"test {r.get('test')} rows; C chosen by {report.linear.get('C_selection')}.\n\n"
    )
    missing = report.linear.get("classes_without_positives") or []
    tail = f"\nClasses without positives in test (left out of macro scores): {', '.join(missing)}\n"
    return intro + _markdown_table(header, rows) + (tail if missing else "")


def probe_rich_table(report: ProbeReport) -> Any:
    """A rich Table of the probe metrics (in percent)."""
    from rich.table import Table

    header, rows = _probe_rows(report)
    table = Table(title=f"Probe on {report.meta.get('sensor')} embeddings, test split (%)")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def plot_precision_curves(
    report: RetrievalReport, out_dir: str | Path, overwrite: bool = False
) -> list[Path]:
    """Draw precision@k and mAP@k over k = 1..K for every direction (PNG, matplotlib Agg).

    Writes ``precision_at_k.png`` and ``map_at_k.png`` into ``out_dir``.

    Returns:
        The written files.

    Raises:
        CsmoeError: if a file exists and ``overwrite`` is false.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    with new_folder(out_dir):  # a new folder goes again, with its figures, if one fails
        for metric, fname, ylabel in (
            ("precision", PLOT_FILES[0], "precision@k (CSMAE)"),
            ("map", PLOT_FILES[1], "mAP@k"),
        ):
            target = check_output_path(out_dir / fname, overwrite)
            fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
            for direction, curves in report.curves.items():
                y = curves[metric]
                ax.plot(
                    range(1, len(y) + 1), y, marker="." if len(y) <= 30 else None, label=direction
                )
            ax.set_xlabel("k (retrieved items)")
            ax.set_ylabel(ylabel)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(title=f"labels: {report.meta.get('labels_column')}")
            ax.set_title(
                f"Retrieval, queries {report.meta.get('queries')} / archive {report.meta.get('archive')}"
            )
            fig.tight_layout()
            with atomic_output(target, overwrite) as tmp:
                fig.savefig(tmp, format="png")
            plt.close(fig)
            written.append(target)
    return written
