"""Where chunks of footprints are described: in this process, a process pool, or a Dask cluster.

Every executor calls ``on_done(i, result)`` once per task with the task's index, keeps a bounded
number of tasks in flight (memory stays bounded), and leaves the order of results to the caller,
so that the output cannot depend on which executor ran or in which order tasks finished.
:class:`TaskRunner` keeps one executor open across the batches of a streamed build.
"""

from __future__ import annotations

import contextlib
import gc
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Generic, TypeVar

from csmoe_common.processes import stop_pool, wait_first, worker_initializer
from csmoe_data.errors import CsmoeDataError

R = TypeVar("R")
#: how long connecting to a Dask scheduler may take (the handshake after the socket opened)
CONNECT_TIMEOUT = "20s"
#: how long opening a socket to a Dask scheduler may take (an unreachable one fails fast)
PROBE_TIMEOUT_S = 5.0
#: one task: the positional arguments of the chunk function
Task = tuple[object, ...]


#: container objects allocated (net) between two young-generation collections of the garbage
#: collector while footprints are described (CPython's default is 700; see :func:`fewer_gc_passes`)
GC_YOUNG_THRESHOLD = 20_000


def _raise_gc_threshold() -> tuple[int, int, int]:
    """Raise the collector's young-generation threshold to :data:`GC_YOUNG_THRESHOLD`; the old."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_YOUNG_THRESHOLD), old[1], old[2])
    return old


@contextlib.contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Run the cyclic garbage collector less often while the block runs (the whole process).

    shapely geometries are objects the collector tracks, and a build makes hundreds of
    thousands of them per batch (decoded, repaired, reprojected, in pixel space). With the
    default threshold (a young-generation pass every 700 allocations) every geometry is
    scanned several times on its way to the old generation, and full passes scan every live
    one: measured on 131,072 footprints described in one process, 1.1 s of 4.4 s CPU went to
    the collector, 0.2 s with a threshold of 20,000 (the same as with the collector off).
    Cyclic garbage is still collected, only after more allocations; reference counting frees
    everything else at once as before. The old thresholds are put back on exit.
    """
    old = _raise_gc_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _nothing() -> None:
    """A task that does nothing (it makes the pool fork its workers)."""


def single_threaded_blas() -> Any:
    """Limit BLAS (OpenBLAS, MKL) to one thread in this process; None without threadpoolctl.

    Describing a chunk multiplies small matrices (2000 x 256 histograms by a 256 x k class
    map); a multi-threaded BLAS spins its threads on each of them, which on a machine whose
    cores are taken by the workers costs several times the product itself (measured: 7 ms of
    CPU and 21 ms of wall time per product with 2 threads, 1.2 ms and 3.7 ms with one). BLAS
    splits a product between threads by output blocks, so the results do not change.

    Returns:
        threadpoolctl's limiter (``restore_original_limits()`` undoes it), or None.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of the data extra
        return None
    return threadpool_limits(limits=1, user_api="blas")


def init_worker() -> None:
    """Prepare a worker process: Ctrl-C ignored, no inherited GDAL handles, BLAS on one thread.

    The parent handles Ctrl-C; BLAS threads: see :func:`single_threaded_blas`; the garbage
    collector runs less often, as in the parent (:func:`fewer_gc_passes`).
    """
    # Ctrl-C is handled by the parent, which cancels the pool; workers stay quiet
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a worker must not inherit the parent's open GDAL handles (fork)
    from csmoe_data.engine import io

    io._OPEN.clear()
    single_threaded_blas()
    _raise_gc_threshold()  # a pool worker only describes chunks: for its whole life


def _probe_scheduler(address: str) -> None:
    """Fail fast (one line) when nothing listens at a TCP/TLS scheduler address.

    ``distributed.Client`` retries a refused connection until its timeout (20 s here); a plain
    socket tells at once (refused) or within :data:`PROBE_TIMEOUT_S` (no route, filtered).
    Other schemes (``inproc://``, ``ucx://``) are left to the client.

    Raises:
        CsmoeDataError: a malformed address, or no scheduler listening at it.
    """
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, loc = parse_address(address)
        if scheme not in ("tcp", "tls"):
            return
        host, port = parse_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise CsmoeDataError(f"bad Dask scheduler address {address!r}: {exc}") from exc
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CsmoeDataError(
            f"cannot connect to the Dask scheduler at {address}: {reason}"
        ) from exc


class TaskRunner(Generic[R]):
    """One executor kept open across batches: ``fn(*task, *extra)`` for every task of each batch.

    Open it as a context manager. A Dask scheduler is connected on entry, so an unreachable
    scheduler is reported before any footprint is loaded (``extra`` is scattered to every worker
    with the first batch, so it may be set after entry); a process pool is started on entry and its workers (and what they cached, such as
    rasters read into memory or numba's compiled code) serve every batch.

    Args:
        fn: the chunk function (picklable).
        extra: arguments appended to every task (sent once to Dask workers).
        workers: processes (1 = in this process).
        dask_scheduler: a Dask scheduler address; overrides ``workers``.
    """

    def __init__(
        self,
        fn: Callable[..., R],
        extra: Task,
        workers: int = 1,
        dask_scheduler: str | None = None,
    ):
        from csmoe_common.processes import check_workers

        self.fn = fn
        self.extra = extra
        self.workers = check_workers(workers)
        self.dask_scheduler = dask_scheduler
        self._pool: ProcessPoolExecutor | None = None
        self._client: Any = None
        self._extra_f: Any = None
        self._scattered: Task | None = None
        self._window = 1
        self._blas: Any = None
        self._exiting: list[Any] | None = None

    def __enter__(self) -> TaskRunner[R]:
        if self.dask_scheduler:
            self._connect(self.dask_scheduler)
        elif self.workers > 1:
            import multiprocessing as mp

            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            # workers die with this process, whatever kills it (no orphan keeps its memory)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=worker_initializer(init_worker),
            )
            self._window = 2 * self.workers
            # fork every worker now, from this thread: the workers' parent-death signal is tied
            # to the forking thread, and no other thread of this process (the build's stages)
            # is running yet, so none of their locks can be inherited half-held
            # the workers inherit every object alive now (modules, rasters' specs) and never
            # free one: frozen (``gc.freeze``, as the gc module's docs advise before a fork),
            # their collector passes skip them and do not write into (copy) the shared pages;
            # 20,000 footprints, 2 workers: 2.95 -> 2.81 CPU-s for the whole run. This process
            # gets its collector back as it was (frozen by a caller, or not) right after.
            frozen_before = gc.get_freeze_count()
            gc.freeze()
            try:
                self._pool.submit(_nothing)
            finally:
                if not frozen_before:
                    gc.unfreeze()
        return self

    def finish(self) -> None:
        """No task will follow: the pool's workers are told to exit now, not when the block ends.

        Their exit (the kernel tearing down each worker's memory, tens of milliseconds) then
        overlaps with what the caller still does (writing the last batch); leaving the block
        still waits for them. Called from the thread that runs the tasks; a no-op without a pool.
        """
        if self._pool is not None and self._exiting is None:
            self._exiting = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False)

    def warm(self, fn: Callable[..., None], *args: object) -> None:
        """Run ``fn(*args)`` once per pool worker, ahead of the tasks (loading compiled code).

        Workers run it while this process is still reading footprints; a no-op without a pool.
        """
        if self._pool is not None:
            for _ in range(self.workers):
                self._pool.submit(fn, *args)

    def _connect(self, address: str) -> None:
        try:
            import dask
            from distributed import Client
        except ImportError as exc:
            raise CsmoeDataError(
                "--dask-scheduler needs dask.distributed: pip install 'csmoe[dask]'"
            ) from exc
        _probe_scheduler(address)
        try:
            # distributed keeps the last ``low-level-log-length`` (1,000) messages sent to the
            # scheduler, each with the footprints of the task it submitted (a chunk's WKB, up
            # to 1 MB): the client's memory grew by ~100 bytes per footprint until 1,000
            # tasks were logged. Nothing of this build needs that debugging log.
            # Not the default client: tasks go through this client only, and a default one
            # sets dask's global ``scheduler``, so later dask work in this process (xarray's
            # file locks) went to a scheduler long gone when a client was not closed cleanly.
            with dask.config.set({"distributed.admin.low-level-log-length": 0}):
                self._client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise CsmoeDataError(
                f"cannot connect to the Dask scheduler at {address}: {exc}"
            ) from exc
        except Exception as exc:  # something listens, but its handshake fails in any way
            detail = str(exc).splitlines()[0][:120] if str(exc) else ""
            raise CsmoeDataError(
                f"no Dask scheduler answered at {address} (something else listens there: "
                f"{type(exc).__name__}{': ' + detail if detail else ''})"
            ) from exc
        n_workers = max(1, len(self._client.scheduler_info().get("workers", {})))
        self._window = 2 * n_workers + 2

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None
        if self._pool is not None:
            if exc_type is not None:
                stop_pool(self._pool)  # Ctrl-C, SIGTERM, an error: do not wait for running chunks
                for proc in self._exiting or ():  # told to exit already (finish)
                    with contextlib.suppress(Exception):
                        proc.kill()
            else:
                self._pool.shutdown(wait=True)
            for proc in self._exiting or ():
                with contextlib.suppress(Exception):
                    proc.join(timeout=5 if exc_type is not None else None)
            self._pool = None
            self._exiting = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(self, tasks: Sequence[Task], on_done: Callable[[int, R], None]) -> None:
        """Run every task of one batch; ``on_done(i, result)`` once per task (any order)."""
        if self._client is not None:
            self._run_dask(tasks, on_done)
        elif self._pool is not None:
            self._run_pool(self._pool, tasks, on_done)
        else:
            if self._blas is None and len(tasks) > 1:
                # tasks run in this process: one BLAS thread while they do (not worth its 20 ms
                # for a one-chunk job)
                self._blas = single_threaded_blas()
            for i, task in enumerate(tasks):
                on_done(i, self.fn(*task, *self.extra))

    def _run_pool(
        self, pool: ProcessPoolExecutor, tasks: Sequence[Task], on_done: Callable[[int, R], None]
    ) -> None:
        pending: dict[Future[R], int] = {}
        it: Iterator[int] = iter(range(len(tasks)))
        for i in it:
            pending[pool.submit(self.fn, *tasks[i], *self.extra)] = i
            if len(pending) >= self._window:
                break
        while pending:
            done = wait_first(pending)  # in slices: SIGTERM is seen while workers hang
            for fut in done:
                i = pending.pop(fut)
                on_done(i, fut.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(self.fn, *tasks[nxt], *self.extra)] = nxt

    def _run_dask(self, tasks: Sequence[Task], on_done: Callable[[int, R], None]) -> None:
        from distributed import as_completed

        client = self._client
        if self._extra_f is None or self._scattered is not self.extra:
            # sent once per job (``extra`` may be set after the scheduler was connected)
            self._extra_f = client.scatter(list(self.extra), broadcast=True)
            self._scattered = self.extra
        it = iter(range(len(tasks)))
        futures = {}
        for i in it:
            futures[client.submit(self.fn, *tasks[i], *self._extra_f, pure=False)] = i
            if len(futures) >= self._window:
                break
        ac = as_completed(list(futures), loop=client.loop)  # this client, not a default one
        for fut in ac:
            i = futures.pop(fut)
            on_done(i, fut.result())
            fut.release()  # the client keeps no result it has handed on
            nxt = next(it, None)
            if nxt is not None:
                f = client.submit(self.fn, *tasks[nxt], *self._extra_f, pure=False)
                futures[f] = nxt
                ac.add(f)


def run_tasks(
    fn: Callable[..., R],
    tasks: Sequence[Task],
    extra: Task,
    on_done: Callable[[int, R], None],
    workers: int = 1,
    dask_scheduler: str | None = None,
) -> None:
    """Run ``fn(*task, *extra)`` over ``tasks`` with the executor the options name (one batch).

    Raises:
        CsmoeDataError: dask.distributed is not installed, or the scheduler cannot be reached.
    """
    with TaskRunner(fn, extra, workers, dask_scheduler) as runner:
        runner.run(tasks, on_done)
