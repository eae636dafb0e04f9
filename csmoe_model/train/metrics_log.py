"""The metrics of a run: ``metrics.csv`` (one row per logged step) and TensorBoard scalars in ``tb/``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from csmoe_common.atomic import atomic_file

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


class MetricsLog:
    """``metrics.csv`` (appended; on resume truncated to the resumed step) and TensorBoard scalars.

    Args:
        out: the run directory.
        start_step: the step training starts from (rows after it are dropped; TensorBoard purges
            the events after it).
        enabled: write anything at all (only rank 0 writes).

    Attributes:
        note: a one-line note for the user (e.g. tensorboard missing), or ``None``.
    """

    def __init__(self, out: Path, start_step: int, enabled: bool) -> None:
        self.path = out / "metrics.csv"
        self.enabled = enabled
        self.columns: list[str] | None = None
        self.writer: SummaryWriter | None = None
        self.note: str | None = None
        if not enabled:
            return
        if self.path.is_file():
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                self.columns = list(rows[0].keys())
            kept = [r for r in rows if int(r["step"]) <= start_step]
            with atomic_file(self.path) as tmp, open(tmp, "w", newline="") as fh:
                if self.columns:
                    w = csv.DictWriter(fh, self.columns)
                    w.writeheader()
                    w.writerows(kept)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # a bare GPU host without the tensorboard package: metrics.csv only
            self.note = "tensorboard is not installed: metrics go to metrics.csv only"
            return
        self.writer = SummaryWriter(
            str(out / "tb"), purge_step=start_step + 1 if start_step else None
        )

    def write(self, row: dict[str, float]) -> None:
        """Append one row (keys: ``step``, ``epoch`` and the figures) to the CSV and TensorBoard."""
        if not self.enabled:
            return
        if self.columns is None:
            self.columns = list(row.keys())
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, self.columns).writeheader()
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.columns, extrasaction="ignore").writerow(row)
        if self.writer is None:
            return
        step = int(row["step"])
        for k, v in row.items():
            if k not in ("step", "epoch"):
                self.writer.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
