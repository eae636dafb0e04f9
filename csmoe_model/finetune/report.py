"""Markdown tables of fine-tuning and segmentation metrics (the ``metrics.md`` of a run)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["metrics_markdown"]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{100 * float(v):.2f}"


def metrics_markdown(report: dict[str, Any]) -> str:
    """A Markdown summary of ``metrics.json`` (values in percent)."""
    sel = report.get("selection", {})
    lines = [
        f"# {'Segmentation' if report.get('task') == 'segment' else 'Scene classification'}: "
        f"{report.get('model')} ({report.get('mode')}, {report.get('sensor')})",
        "",
        f"Selected at step {sel.get('best_step')} of {report.get('steps')} by {sel.get('metric')}; "
        f"test rows: {report.get('rows', {}).get('test') if isinstance(report.get('rows'), dict) else report.get('rows')}.",
        "",
    ]
    if report.get("task") == "segment":
        lines += ["| mIoU | overall accuracy | macro F1 |", "|---:|---:|---:|",
                  f"| {_fmt(report['miou'])} | {_fmt(report['overall_accuracy'])} | {_fmt(report['macro_f1'])} |",
                  "", "| class | IoU | F1 |", "|---|---:|---:|"]  # fmt: skip
        for name, iou in report["per_class_iou"].items():
            lines.append(f"| {name} | {_fmt(iou)} | {_fmt(report['per_class_f1'][name])} |")
    else:
        cols = ["macro_map", "micro_map", "macro_f1", "micro_f1"] + (
            ["accuracy"] if "accuracy" in report else []
        )
        heads = {"macro_map": "macro mAP", "micro_map": "micro mAP", "macro_f1": "macro F1",
                 "micro_f1": "micro F1", "accuracy": "accuracy"}  # fmt: skip
        lines += ["| " + " | ".join(heads[c] for c in cols) + " |", "|" + "---:|" * len(cols),
                  "| " + " | ".join(_fmt(report[c]) for c in cols) + " |"]  # fmt: skip
    return "\n".join(lines) + "\n"
