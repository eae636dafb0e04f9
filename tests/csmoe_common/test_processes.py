"""Process lifecycle helpers, tested with real processes and real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from csmoe_common.errors import CsmoeError
from csmoe_common.processes import (
    Terminated,
    exclusive_lock,
    exit_code,
    lock_holder,
    result_of,
    set_parent_death_signal,
    wait_first,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and fork")


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for a reaper is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


POOL = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
from csmoe_common.processes import exit_code, install_termination_handler, worker_initializer


def pid(_):
    time.sleep(0.2)
    return os.getpid()


if __name__ == "__main__":
    install_termination_handler()
    try:
        with ProcessPoolExecutor(2, mp_context=mp.get_context(sys.argv[1]),
                                 initializer=worker_initializer()) as pool:
            print(*sorted(set(pool.map(pid, range(8)))), flush=True)
            time.sleep(60)
    except KeyboardInterrupt as exc:
        raise SystemExit(exit_code(exc))
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_pool_workers_die_with_their_parent(method: str, sig: int, tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    proc = subprocess.Popen(
        [sys.executable, str(script), method],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    workers = [int(p) for p in line.split()]
    assert workers, proc.stderr.read() if proc.stderr else ""
    assert all(alive(p) for p in workers)
    proc.send_signal(sig)
    proc.wait(timeout=10)
    assert wait_gone(workers) == []
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM  # handled like Ctrl-C, exit 143


def test_sigterm_raises_keyboard_interrupt_and_runs_cleanup() -> None:
    proc = python(
        """
        import time
        from csmoe_common.processes import install_termination_handler, Terminated, exit_code
        install_termination_handler()
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt as exc:
            print("cleanup", type(exc).__name__, isinstance(exc, Terminated), flush=True)
            raise SystemExit(exit_code(exc))
        """
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert out.split() == ["cleanup", "Terminated", "True"]
    assert proc.returncode == 143


def test_forked_child_keeps_the_default_sigterm() -> None:
    # a child forked after the handler was installed dies on SIGTERM instead of raising
    proc = python(
        """
        import os, signal, time
        from csmoe_common.processes import install_termination_handler
        install_termination_handler()
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(ready_w, b"1")  # Python's after-fork set-up is done: signals are not lost
            time.sleep(30)
            os._exit(0)
        os.read(ready_r, 1)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, flush=True)
        """
    )
    out, err = proc.communicate(timeout=20)
    assert out.strip() == "True", err


def test_exit_codes() -> None:
    assert exit_code(KeyboardInterrupt()) == 130
    assert exit_code(Terminated(signal.SIGTERM)) == 143
    assert isinstance(Terminated(signal.SIGTERM), KeyboardInterrupt)


def test_parent_death_signal_is_available_on_linux() -> None:
    assert set_parent_death_signal(0) is True  # 0 clears it again


HOLD_AND_FORK = """
    import os, sys, time
    from csmoe_common.processes import exclusive_lock
    with exclusive_lock(sys.argv[1]):
        child = os.fork()  # a child that outlives us, as an orphaned worker would
        if child == 0:
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
        time.sleep(60)
"""


def test_lock_dies_with_its_holder_not_with_its_children(tmp_path: Path) -> None:
    lock = tmp_path / "cache.lock"
    proc = python(HOLD_AND_FORK, str(lock))
    assert proc.stdout is not None
    orphan = int(proc.stdout.readline())
    assert lock_holder(lock) == proc.pid
    with (
        pytest.raises(CsmoeError, match=f"timed out.*{lock.name}"),
        exclusive_lock(lock, timeout=0.3),
    ):
        pass
    proc.kill()
    proc.wait(timeout=10)
    try:
        assert alive(orphan)  # the forked child still runs, and holds no lock
        notes: list[str] = []
        with exclusive_lock(lock, on_wait=notes.append, timeout=5):
            assert lock_holder(lock) == os.getpid()
        assert notes == []
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_waiter_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    proc = python(
        """
        import sys, time
        from csmoe_common.processes import exclusive_lock
        with exclusive_lock(sys.argv[1]):
            print("held", flush=True)
            time.sleep(0.8)
        """,
        str(lock),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    notes: list[str] = []
    with exclusive_lock(lock, on_wait=notes.append, timeout=20):
        pass
    proc.wait(timeout=10)
    assert len(notes) == 1 and f"process {proc.pid}" in notes[0] and str(lock) in notes[0]


def test_lock_excludes_threads_of_one_process(tmp_path: Path) -> None:
    import threading

    lock = tmp_path / "t.lock"
    inside: list[int] = []
    overlap: list[bool] = []

    def work() -> None:
        with exclusive_lock(lock):
            inside.append(1)
            overlap.append(len(inside) > 1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == [False] * 4


def test_lock_file_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "x.lock"
    with pytest.raises(CsmoeError, match="cannot create the lock file"), exclusive_lock(missing):
        pass


@pytest.mark.parametrize("waiter", ["wait_first", "result_of"])
def test_waiting_on_workers_sees_a_signal_delivered_to_another_thread(waiter: str) -> None:
    # the kernel may hand SIGTERM or Ctrl-C to a pool's management thread; a main thread waiting
    # for a worker that hangs (a stuck file system) must still get the KeyboardInterrupt
    import threading
    from concurrent.futures import Future

    hung: Future[int] = Future()
    # the worker comes back after a while, so that a waiter deaf to the signal makes the test
    # fail rather than hang: the interrupt must come while the worker still hangs
    unhang = threading.Timer(5, hung.set_result, (1,))
    unhang.start()

    def signal_from_this_thread() -> None:
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Timer(0.2, signal_from_this_thread).start()
    with pytest.raises(KeyboardInterrupt):
        try:
            if waiter == "wait_first":
                wait_first([hung])
            else:
                result_of(hung)
        finally:
            interrupted_while_hung = not hung.done()
            unhang.cancel()
    assert interrupted_while_hung


def test_wait_first_returns_what_is_done() -> None:
    from concurrent.futures import Future

    done: Future[int] = Future()
    done.set_result(3)
    pending: Future[int] = Future()
    assert wait_first([pending, done]) == {done} and wait_first([]) == set()
    assert result_of(done) == 3


def test_worker_counts_are_bounded_by_the_cpus() -> None:
    from csmoe_common.errors import CsmoeError
    from csmoe_common.processes import WORKERS_PER_CPU, check_workers, usable_cpus

    limit = WORKERS_PER_CPU * usable_cpus()
    assert check_workers(0) == 0 and check_workers(limit) == limit
    with pytest.raises(CsmoeError, match=f"--workers {limit + 1} is more than {limit}"):
        check_workers(limit + 1)
    with pytest.raises(CsmoeError, match="-j must be 0 or more"):
        check_workers(-1, "-j")
