"""A small rich progress bar (rate and ETA, on stderr) for sampling and stats."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def progress_bar(total: int, what: str, unit: str, enabled: bool) -> Iterator[Callable[[int], Any]]:
    """Yield ``advance(n)``; draws a transient bar with count, rate and ETA when ``enabled``.

    Args:
        total: number of items.
        what: label on the left.
        unit: item name in the rate (e.g. ``rows``).
        enabled: False yields a no-op (tests, pipes, small jobs).
    """
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _Rate(ProgressColumn):
        def render(self, task: Any) -> Text:  # items per second, not bytes
            speed = task.finished_speed or task.speed
            text = "?/s" if speed is None else f"{speed:,.0f} {unit}/s"
            return Text(text, style="progress.data.speed")

    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)
