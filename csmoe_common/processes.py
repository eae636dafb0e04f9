"""Process lifecycle: SIGTERM like Ctrl-C, workers that die with their parent, locks that die too.

Schedulers stop jobs with SIGTERM (``timeout``, docker, systemd, SLURM), and sometimes with
SIGKILL. The promises of this module:

* :func:`install_termination_handler` makes SIGTERM (and SIGHUP) raise :class:`Terminated`, a
  :class:`KeyboardInterrupt`, in the main thread of the process that installed it, so every
  ``finally`` and the CLI's one-line interrupt message run exactly as for Ctrl-C. Processes
  forked later inherit the handler but not its effect: in them the signal keeps its default
  action (they die), which is what a worker should do.
* :func:`worker_initializer` (give it to ``ProcessPoolExecutor(initializer=...)`` or as a
  DataLoader ``worker_init_fn``) makes a worker ignore Ctrl-C (the parent handles it and cancels
  the pool), die on SIGTERM, and die as soon as its parent dies, whatever killed the parent:
  Linux's ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` where available, and a watchdog thread that
  checks the parent pid twice a second everywhere (the fallback, and a guard against the pdeath
  signal's one gap: it fires when the *thread* that forked the worker ends, so pools must be
  created from a thread that lives as long as they do; the main thread always does).
* :func:`exclusive_lock` is a POSIX record lock (``fcntl.lockf``) on a file opened with
  ``O_CLOEXEC``: the kernel releases it when its holder dies, forked children do not inherit it
  (``flock`` locks are shared with every child that inherits the descriptor, so an orphaned
  worker kept a dead build's lock forever), and a waiter is told who holds it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from csmoe_common.errors import CsmoeError

#: ``prctl`` option that sends a signal to this process when its parent dies (linux/prctl.h)
PR_SET_PDEATHSIG = 1
#: seconds between two parent checks of the watchdog thread
WATCHDOG_INTERVAL = 0.5

R = TypeVar("R")

_handler_pid: int | None = None
_previous: dict[int, object] = {}


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP.

    A :class:`KeyboardInterrupt`, so code that cleans up on Ctrl-C cleans up on SIGTERM too.

    Attributes:
        signum: the signal received.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: most worker processes a command starts per CPU it may use: more only thrash (and a typo such
#: as --workers 100000 would fork that many processes at once)
WORKERS_PER_CPU = 8


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; the machine's count elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_workers(workers: int, option: str = "--workers") -> int:
    """Refuse a worker count that is negative or far beyond this machine's CPUs.

    Raises:
        CsmoeError: ``workers`` < 0 or > :data:`WORKERS_PER_CPU` x :func:`usable_cpus`.
    """
    cpus = usable_cpus()
    limit = WORKERS_PER_CPU * cpus
    if workers < 0:
        raise CsmoeError(f"{option} must be 0 or more, got {workers}")
    if workers > limit:
        raise CsmoeError(
            f"{option} {workers} is more than {limit} ({WORKERS_PER_CPU} per CPU; this process "
            f"may use {cpus})"
        )
    return workers


def exit_code(exc: BaseException) -> int:
    """The conventional exit status for an interruption: 128 + the signal (130 for Ctrl-C)."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)


def _on_termination(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _handler_pid:
        # a forked child inherited the handler: behave as if it had never been installed
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated(signum)


def install_termination_handler() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` in this process's main thread.

    Does nothing outside the main thread (Python only lets the main thread set handlers) or where
    a signal was set to be ignored by whoever started us (``nohup`` keeps SIGHUP ignored).
    """
    global _handler_pid
    if threading.current_thread() is not threading.main_thread():
        return
    _handler_pid = os.getpid()
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:  # pragma: no cover - Windows has no SIGHUP
            continue
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        _previous.setdefault(signum, current)
        signal.signal(signum, _on_termination)


def uninstall_termination_handler() -> None:
    """Restore the handlers :func:`install_termination_handler` replaced (tests, embedding)."""
    global _handler_pid
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in _previous.items():
        signal.signal(signum, previous)  # type: ignore[arg-type]
    _previous.clear()
    _handler_pid = None


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - a libc-less Linux
        return None


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only).

    Returns:
        Whether the kernel accepted it (False off Linux).
    """
    libc = _libc()
    if libc is None:
        return False
    return int(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _watch_parent(owner: int, parent: int, interval: float) -> None:
    while True:
        # re-parented (the parent died), or the owner is gone (forkserver: owner != parent)
        if os.getppid() != parent or (owner != parent and not _alive(owner)):
            os._exit(1)  # nobody will ever collect our results
        time.sleep(interval)


def die_with_parent(parent_pid: int, interval: float = WATCHDOG_INTERVAL) -> None:
    """Make this (worker) process end when the process ``parent_pid`` ends, however it ends.

    Call it first thing in a forked or spawned worker; ``parent_pid`` is the owner's
    ``os.getpid()`` taken *before* the worker was started. A worker whose parent already died
    has been re-parented and exits at once; under multiprocessing's forkserver the direct parent
    is the server, so the watchdog also checks that the owner itself still lives.
    """
    set_parent_death_signal(signal.SIGKILL)
    parent = os.getppid()
    if parent != parent_pid and not _alive(parent_pid):  # died before the signal was armed
        os._exit(1)
    threading.Thread(
        target=_watch_parent,
        args=(parent_pid, parent, interval),
        name="csmoe-parent-watchdog",
        daemon=True,
    ).start()


def _init_worker(parent_pid: int, then: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent cancels the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # SIGTERM: die now, the parent cleans up
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    die_with_parent(parent_pid)
    if then is not None:
        then()


class WorkerInitializer:
    """A picklable initializer for pool workers (see :func:`worker_initializer`).

    Attributes:
        parent_pid: the pid of the process that owns the pool.
        then: an optional extra initializer run afterwards (must be picklable for spawn).
    """

    def __init__(self, parent_pid: int, then: Callable[[], None] | None = None) -> None:
        self.parent_pid = parent_pid
        self.then = then

    def __call__(self, *_args: object) -> None:
        """Run in the worker (DataLoader passes the worker id, ProcessPoolExecutor nothing)."""
        _init_worker(self.parent_pid, self.then)


def worker_initializer(then: Callable[[], None] | None = None) -> WorkerInitializer:
    """An initializer for this process's workers: ignore SIGINT, die on SIGTERM and with the parent.

    ``then`` (optional) runs afterwards.
    Usable as ``ProcessPoolExecutor(initializer=worker_initializer())`` and as
    ``DataLoader(worker_init_fn=worker_initializer())``.
    """
    return WorkerInitializer(os.getpid(), then)


# --------------------------------------------------------------------------------------- locks

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    # record locks belong to the process: two threads of one process would both "hold" them
    key = os.path.abspath(path)
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


def lock_holder(path: str | Path) -> int | None:
    """The pid written into a lock file by its current (or last) holder, if any."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def exclusive_lock(
    path: str | Path,
    *,
    on_wait: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> Iterator[None]:
    """Hold an exclusive inter-process lock on the file ``path`` (created if missing, never removed).

    The lock is a POSIX record lock: released by the kernel when the holder exits or is killed,
    never inherited by forked children, and held by one thread of this process at a time.

    Args:
        path: the lock file.
        on_wait: called once with a one-line note when another process holds the lock.
        timeout: give up after this many seconds (``None``: wait as long as it takes).

    Raises:
        CsmoeError: the lock file cannot be created, or ``timeout`` passed.
    """
    import fcntl

    path = Path(path)
    thread_lock = _thread_lock(path)
    if not thread_lock.acquire(timeout=-1 if timeout is None else timeout):
        raise CsmoeError(f"timed out after {timeout:g} s waiting for the lock {path}")
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CsmoeError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
        try:
            _acquire(fd, path, on_wait, timeout)
            with contextlib.suppress(OSError):  # tell waiters who holds it
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        thread_lock.release()


def _acquire(
    fd: int, path: Path, on_wait: Callable[[str], None] | None, timeout: float | None
) -> None:
    import fcntl

    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EAGAIN):
            raise CsmoeError(f"cannot lock {path}: {exc.strerror or exc}") from None
    if on_wait is not None:
        holder = lock_holder(path)
        who = f"process {holder}" if holder else "another process"
        on_wait(f"waiting for {who}, which holds the lock {path}")
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.05
    while True:
        # polling, not a blocking F_SETLKW: a blocked system call would delay Ctrl-C/SIGTERM
        time.sleep(delay)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise CsmoeError(f"cannot lock {path}: {exc.strerror or exc}") from None
        if deadline is not None and time.monotonic() > deadline:
            raise CsmoeError(f"timed out after {timeout:g} s waiting for the lock {path}")
        delay = min(delay * 2, 0.5)


# --------------------------------------------------------------------------------------- pools


#: seconds of one slice of :func:`wait_first`: the longest a signal waits for the main thread
WAIT_SLICE_S = 0.1


def wait_first(futures: Collection[Future[Any]]) -> set[Future[Any]]:
    """Wait until one of ``futures`` is done, in slices, so that the waiter still sees signals.

    The kernel hands a signal sent to the process (SIGTERM from a scheduler, Ctrl-C) to any of its
    threads, often a pool's management thread. Python then runs the handler in the main thread
    only when that thread executes bytecode again, which it never does inside an unbounded
    ``concurrent.futures.wait`` or ``Future.result()``: a worker blocked on a hung file system
    would leave the command deaf to SIGTERM. Waking every :data:`WAIT_SLICE_S` bounds the delay.

    Returns:
        The futures that are done (empty only when ``futures`` is).
    """
    while futures:
        done, _ = wait(futures, timeout=WAIT_SLICE_S, return_when=FIRST_COMPLETED)
        if done:
            return done
    return set()


def result_of(future: Future[R]) -> R:
    """``future.result()``, waiting as :func:`wait_first` does (interruptible by any signal)."""
    wait_first([future])
    return future.result()


def stop_pool(executor: Any) -> None:
    """Stop a ``ProcessPoolExecutor`` now: cancel what has not started and kill its workers.

    ``shutdown(wait=True)`` (what leaving a ``with`` block does) waits for the running tasks, which
    after an interruption can be forever (a worker blocked on a hung network file system);
    ``shutdown(wait=False)`` alone leaves the workers running. Killing them is safe here: their
    results are discarded, and they write only into the caller's temporary output.
    """
    processes = dict(getattr(executor, "_processes", None) or {})
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in processes.values():
        with contextlib.suppress(Exception):
            proc.kill()
    for proc in processes.values():
        with contextlib.suppress(Exception):
            proc.join(timeout=5)
