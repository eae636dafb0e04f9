"""Run a stage of a build in a thread, a bounded number of items ahead of the next stage.

A streamed build has three stages per batch of footprints: read (decode and check the batch),
describe (chunks sent to the workers) and write (assemble the rows, write the row groups).
Run one after the other, the workers wait while the parent reads and writes, and the parent
waits while the workers describe. :class:`Background` runs one stage in a thread and hands its
items to the next stage through a queue of ``depth`` items, so that the parent reads batch k+1
and writes batch k-1 while the workers describe batch k. Items come out in the order they were
made and an error of a stage is raised in the consumer, in order, so the output and the errors
are those of the sequential build; at most ``depth`` finished items wait in each queue, so memory
stays bounded by a few batches.

The heavy parts of each stage (Arrow decoding, GEOS, PROJ, the compiled kernels, waiting for
workers) release the GIL, which is what makes threads pay here.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2
#: seconds between two checks of the stop flag while a queue is full
_POLL_S = 0.05
#: seconds :meth:`Background.__exit__` waits for the thread after a stop
_JOIN_S = 5.0


class Stopped(Exception):
    """Raised inside a stage's thread when the build stopped (an error or an interruption)."""


class Background(Generic[T]):
    """Iterate ``items`` in a daemon thread, at most ``depth`` finished items ahead.

    Use as a context manager and iterate it once. Leaving the block (normally, on an error or
    on Ctrl-C) sets ``stop``; the thread then stops at its next item (a stage may also poll
    ``stop`` itself, see :meth:`check`) and is joined for a few seconds.

    Args:
        items: the stage (typically a generator), run entirely in the thread.
        depth: finished items that may wait for the consumer.
        name: the thread's name.
        stop: a stop flag shared by the stages of one build (a new one by default).
    """

    def __init__(
        self,
        items: Iterable[T],
        depth: int = 1,
        name: str = "csmoe-stage",
        stop: threading.Event | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, not {depth}")
        self.stop = stop if stop is not None else threading.Event()
        self._items = items
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._pump, name=name, daemon=True)

    def check(self) -> None:
        """Raise :class:`Stopped` when the build stopped (for long steps inside a stage).

        Raises:
            Stopped: the stop flag is set.
        """
        if self.stop.is_set():
            raise Stopped

    def __enter__(self) -> Background[T]:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self._thread.join(_JOIN_S)

    def __iter__(self) -> Iterator[T]:
        while True:
            # wait in short slices: a signal the kernel hands to another thread of the process
            # (SIGTERM from a scheduler, Ctrl-C) runs its Python handler only when the main
            # thread runs bytecode again, never while it sleeps in an unbounded Queue.get
            try:
                kind, value = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if kind == _ITEM:
                yield value  # type: ignore[misc]
            elif kind == _END:
                return
            else:
                assert isinstance(value, BaseException)
                raise value

    def _put(self, kind: int, value: object) -> bool:
        """Queue one item; False when the build stopped before there was room."""
        while not self.stop.is_set():
            try:
                self._queue.put((kind, value), timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        it = iter(self._items)
        try:
            for item in it:
                if not self._put(_ITEM, item):
                    return
            self._put(_END, None)
        except Stopped:
            return
        except BaseException as exc:  # handed to the consumer, which raises it in order
            self._put(_ERROR, exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None:  # a generator's own clean-up runs in its thread
                close()
