"""The study's table (``study.md``) and trade-off plot (``tradeoff.png``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from csmoe_common.atomic import atomic_output

__all__ = ["ACCURACY_KEYS", "plot_tradeoff", "study_markdown"]

#: the accuracy figures of a cell, in the order the table shows them, with their full names
ACCURACY_KEYS: dict[str, str] = {
    "finetune_macro_map": "fine-tuned scene classification, macro mAP (%)",
    "probe_linear_macro_map": "linear probe, macro mAP (%)",
    "probe_knn_macro_map": "kNN probe, macro mAP (%)",
    "segment_miou": "segmentation (frozen encoder, UPerNet), mIoU (%)",
}


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{100 * float(v):.1f}"


def headline(report: dict[str, Any]) -> str:
    """The accuracy the plot shows: fine-tuned macro mAP, else the first figure every cell has."""
    for key in ACCURACY_KEYS:
        vals = [c.get(key) for c in report["cells"]]
        if all(v is not None and math.isfinite(float(v)) for v in vals):
            return key
    return "finetune_macro_map"


def study_markdown(report: dict[str, Any]) -> str:
    """One row per cell: compute, parameters, retrieval in four directions, probes, fine-tuning, segmentation."""
    s = report["settings"]
    cells = report["cells"]
    k = cells[0]["retrieval_k"] if cells else s["k"]
    dirs = ("s1->s1", "s2->s2", "s1->s2", "s2->s1")
    lines = [
        "# Study: accuracy against encoder compute",
        "",
        f"Evaluation manifest `{s['manifest']}`; every model pretrained for {s['budget']} steps "
        f"(batch {s['batch_size']}, lr {s['lr']:g}, seed {s['seed']}) on each training set; "
        f"fine-tuning {s['finetune_steps']} steps. Encoder GFLOPs per S1+S2 pair and encoder "
        "parameters as `csmoe model-info` counts them; figures in percent.",
        "",
        "| model | training set | encoder GFLOPs | encoder params (M) | "
        + " | ".join(f"mAP@{k} {d}" for d in dirs)
        + " | linear probe mAP | kNN mAP | fine-tuned mAP | fine-tuned micro F1 | mIoU |",
        "|---|---|---:|---:|" + "---:|" * 9,
    ]
    for c in cells:
        lines.append(
            f"| {c['model']} | {c['train_set']} | {c['encoder_gflops']:.3f} | {c['encoder_params_m']:.2f} | "
            + " | ".join(_pct(c["retrieval_map"].get(d)) for d in dirs)
            + f" | {_pct(c['probe_linear_macro_map'])} | {_pct(c['probe_knn_macro_map'])} | "
            f"{_pct(c['finetune_macro_map'])} | {_pct(c['finetune_micro_f1'])} | {_pct(c['segment_miou'])} |"
        )
    base = [c for c in cells if c["model"] == report["baseline"]]
    if base:
        lines += ["", f"Ratios against the baseline {report['baseline']}:", ""]
        for c in cells:
            b = next((x for x in base if x["train_set"] == c["train_set"]), base[0])
            lines.append(
                f"- {c['model']} ({c['train_set']}): {c['encoder_gflops'] / b['encoder_gflops']:.2f}x "
                f"the encoder FLOPs, {c['encoder_params_m'] / b['encoder_params_m']:.2f}x the parameters"
            )
    return "\n".join(lines) + "\n"


def plot_tradeoff(report: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs encoder GFLOPs and vs encoder parameters (shared accuracy axis), one marker per cell.

    Colour = model, marker = training set; the dashed line is the baseline model's accuracy (per
    training set). Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    key = headline(report)
    cells = report["cells"]
    models = list(dict.fromkeys(c["model"] for c in cells))
    sets = list(dict.fromkeys(c["train_set"] for c in cells))
    colours = plt.get_cmap("tab10")
    markers = "osD^vP*X"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, xkey, xlabel in (
        (axes[0], "encoder_gflops", "encoder GFLOPs per S1+S2 pair (csmoe model-info)"),
        (axes[1], "encoder_params_m", "encoder parameters (millions)"),
    ):
        for c in cells:
            y = c.get(key)
            if y is None or not math.isfinite(float(y)):
                continue
            j = sets.index(c["train_set"])
            # later training sets get smaller markers on top, so coinciding cells stay visible
            ax.scatter(c[xkey], 100 * float(y), s=max(30, 150 - 45 * j), zorder=3 + j,
                       color=colours(models.index(c["model"]) % 10), edgecolors="black",
                       linewidths=0.6, marker=markers[j % len(markers)],
                       label=f"{c['model']}, pretrained on {c['train_set']}")  # fmt: skip
        for c in cells:
            if c["model"] == report["baseline"] and c.get(key) is not None:
                ax.axhline(100 * float(c[key]), color="0.5", linestyle="--", linewidth=0.8)
        ax.set_xlabel(xlabel)
        # linear from 0, so that the distance between markers reads as the ratio of their cost
        xs = [float(c[xkey]) for c in cells]
        ax.set_xlim(0, 1.15 * max(xs) if xs and max(xs) > 0 else 1)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ACCURACY_KEYS[key])
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="0.5", linestyle="--"))
    labels.append(f"baseline: {report['baseline']}")
    fig.legend(
        handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False
    )
    fig.suptitle("Accuracy against encoder compute and size")
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    path = Path(path)
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
