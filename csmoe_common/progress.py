"""The one progress bar: rich, on stderr, with count, rate and ETA.

Every long loop in both halves (descriptors, sampling, stats, cache building, training, embedding,
evaluation) shows progress through :func:`progress_bar`, with one argument order.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Task
    from rich.text import Text

Advance = Callable[[int], None]


def _noop(n: int = 1) -> None:
    return None


def _rate_column(unit: str) -> object:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second (rich's speed column counts bytes)."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            text = f"? {unit}/s" if speed is None else f"{speed:,.0f} {unit}/s"
            return Text(text, style="progress.data.speed")

    return RateColumn()


@contextlib.contextmanager
def progress_bar(
    description: str,
    total: int | None,
    unit: str = "items",
    enabled: bool | None = None,
    transient: bool = True,
    min_total: int = 0,
) -> Iterator[Advance]:
    """Yield ``advance(n=1)`` for a bar with description, count, rate, elapsed time and ETA.

    Args:
        description: label on the left.
        total: number of items (``None``: unknown, no ETA).
        unit: item name in the rate (``rows``, ``pairs``, ``steps``).
        enabled: ``True`` always draws, ``False`` never; ``None`` draws when stderr is a terminal
            and ``total`` is at least ``min_total``.
        transient: remove the bar when done (``False`` leaves the last state on screen).
        min_total: with ``enabled=None``, smaller jobs get no bar.
    """
    show = enabled
    if show is None:
        show = sys.stderr.isatty() and (total is None or total >= min_total)
    if not show:
        yield _noop
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[ProgressColumn] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _rate_column(unit),  # type: ignore[list-item]
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=transient) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance
