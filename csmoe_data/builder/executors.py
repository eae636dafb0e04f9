"""Where chunks of footprints are described: in this process, a process pool, or a Dask cluster.

Every executor calls ``on_done(i, result)`` once per task with the task's index, keeps a bounded
number of tasks in flight (memory stays bounded), and leaves the order of results to the caller,
so that the output cannot depend on which executor ran or in which order tasks finished.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from csmoe_common.processes import stop_pool, worker_initializer
from csmoe_data.errors import CsmoeDataError

R = TypeVar("R")
#: one task: the positional arguments of the chunk function
Task = tuple[object, ...]


def init_worker() -> None:
    """Prepare a worker process: the parent handles Ctrl-C; no inherited GDAL handles.

    Run after :func:`csmoe_common.processes.worker_initializer`'s set-up (SIGTERM kills, and the
    worker dies with its parent), see :func:`run_process_pool`.
    """
    # Ctrl-C is handled by the parent, which cancels the pool; workers stay quiet
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a worker must not inherit the parent's open GDAL handles (fork)
    from csmoe_data.engine import io

    io._OPEN.clear()


def run_serial(
    fn: Callable[..., R], tasks: Sequence[Task], extra: Task, on_done: Callable[[int, R], None]
) -> None:
    """Run ``fn(*task, *extra)`` for every task in this process."""
    for i, task in enumerate(tasks):
        on_done(i, fn(*task, *extra))


def run_process_pool(
    fn: Callable[..., R],
    tasks: Sequence[Task],
    extra: Task,
    workers: int,
    on_done: Callable[[int, R], None],
) -> None:
    """Run ``fn(*task, *extra)`` in ``workers`` processes, at most ``2 * workers`` in flight."""
    import multiprocessing as mp

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    # workers die with this process, whatever kills it (no orphan keeps its memory)
    executor = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=worker_initializer(init_worker)
    )
    pending: dict[Future[R], int] = {}
    it: Iterator[int] = iter(range(len(tasks)))
    try:
        for i in it:
            pending[executor.submit(fn, *tasks[i], *extra)] = i
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                on_done(i, fut.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending[executor.submit(fn, *tasks[nxt], *extra)] = nxt
    except BaseException:
        stop_pool(executor)  # Ctrl-C, SIGTERM, an error: do not wait for running chunks
        raise
    executor.shutdown(wait=True)


def run_dask(
    fn: Callable[..., R],
    tasks: Sequence[Task],
    extra: Task,
    address: str,
    on_done: Callable[[int, R], None],
) -> None:
    """Run ``fn(*task, *extra)`` on a Dask cluster; ``extra`` is scattered once to every worker.

    Raises:
        CsmoeDataError: dask.distributed is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise CsmoeDataError(
            "--dask-scheduler needs dask.distributed: pip install 'csmoe[dask]'"
        ) from exc
    try:
        client = Client(address, timeout="20s", set_as_default=True)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CsmoeDataError(f"cannot connect to the Dask scheduler at {address}: {exc}") from exc
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        window = 2 * n_workers + 2
        extra_f = client.scatter(list(extra), broadcast=True)
        it = iter(range(len(tasks)))
        futures = {}
        for i in it:
            futures[client.submit(fn, *tasks[i], *extra_f, pure=False)] = i
            if len(futures) >= window:
                break
        ac = as_completed(list(futures))
        for fut in ac:
            i = futures.pop(fut)
            on_done(i, fut.result())
            fut.release()
            nxt = next(it, None)
            if nxt is not None:
                f = client.submit(fn, *tasks[nxt], *extra_f, pure=False)
                futures[f] = nxt
                ac.add(f)
    finally:
        client.close()


def run_tasks(
    fn: Callable[..., R],
    tasks: Sequence[Task],
    extra: Task,
    on_done: Callable[[int, R], None],
    workers: int = 1,
    dask_scheduler: str | None = None,
) -> None:
    """Run ``fn(*task, *extra)`` over ``tasks`` with the executor the options name.

    Raises:
        CsmoeDataError: see :func:`run_dask`.
    """
    if dask_scheduler:
        run_dask(fn, tasks, extra, dask_scheduler, on_done)
    elif workers <= 1:
        run_serial(fn, tasks, extra, on_done)
    else:
        run_process_pool(fn, tasks, extra, workers, on_done)
