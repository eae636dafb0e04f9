"""Executors: connecting to a Dask scheduler (fast, one-line failures; no message log kept)."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from csmoe_data.builder.executors import TaskRunner
from csmoe_data.errors import CsmoeDataError


def _double(x: np.ndarray, offset: float) -> np.ndarray:
    return 2 * x + offset


def _free_port() -> int:
    """A local port that nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_scheduler_is_one_line():
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    with (
        pytest.raises(CsmoeDataError, match=f"cannot connect to the Dask scheduler at {address}"),
        TaskRunner(_double, (0.0,), dask_scheduler=address),
    ):
        pass


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "tcp://[::1"])
def test_malformed_scheduler_address(address):
    pytest.importorskip("distributed")
    with (
        pytest.raises(CsmoeDataError, match="Dask scheduler address"),
        TaskRunner(_double, (0.0,), dask_scheduler=address),
    ):
        pass


def test_something_else_listening_is_reported():
    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:  # an HTTP server, not a Dask scheduler
        for _ in range(4):  # the probe, then the client's attempts
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.0 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n" * 4)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        with (
            pytest.raises(CsmoeDataError, match="Dask scheduler") as info,
            TaskRunner(_double, (0.0,), dask_scheduler=address),
        ):
            pass
        assert "\n" not in str(info.value)
        # the failed client left no default scheduler behind (later dask work would ask for it)
        import dask

        assert dask.config.get("scheduler", None) is None
    finally:
        server.close()


def test_client_keeps_no_log_of_submitted_tasks():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        runner = TaskRunner(_double, (1.0,), dask_scheduler=cluster.scheduler_address)
        with runner:
            got: dict[int, np.ndarray] = {}
            tasks = [(np.arange(5.0) + i,) for i in range(6)]
            runner.run(tasks, got.__setitem__)
            # each logged message would hold a task's footprints (the client's memory grew)
            assert runner._client.scheduler_comm.recent_message_log.maxlen == 0
            # not the process's default client: dask work elsewhere in the process (xarray's
            # NetCDF locks) must not go to this scheduler, open or gone
            import dask

            assert dask.config.get("scheduler", None) is None
            with pytest.raises(ValueError, match="No clients found"):
                distributed.default_client()
    assert sorted(got) == list(range(6))
    for i, (x,) in enumerate(tasks):
        np.testing.assert_array_equal(got[i], 2 * x + 1.0)


def _gc_threshold_in_worker() -> int:
    import gc

    return gc.get_threshold()[0]


def test_fewer_gc_passes_while_describing():
    """The young-generation threshold is raised during a build and put back after."""
    import gc

    from csmoe_data.builder import executors

    before = gc.get_threshold()
    with executors.fewer_gc_passes():
        assert gc.get_threshold()[0] == max(before[0], executors.GC_YOUNG_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), executors.fewer_gc_passes():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    # pool workers run with the raised threshold whatever their parent's is
    with TaskRunner(_gc_threshold_in_worker, (), workers=2) as runner:
        got: list[int] = []
        runner.run([()], lambda _i, r: got.append(r))
    assert got == [executors.GC_YOUNG_THRESHOLD] and gc.get_threshold() == before


#: an object of the parent, alive when the pool forks its workers
_INHERITED: list[list[str]] = [["made before the fork"]]


def _inherited_is_frozen_in_worker() -> tuple[int, bool]:
    import gc

    frozen = gc.get_freeze_count()
    gc.collect()  # a full pass in the worker: it must not look at what the parent froze
    inherited = _INHERITED[0]  # a list: always tracked by the collector
    return frozen, gc.is_tracked(inherited) and not any(o is inherited for o in gc.get_objects())


def test_workers_inherit_the_parent_frozen_and_the_parent_is_left_as_it_was():
    """Objects alive at the fork are frozen in the workers; this process is not left frozen."""
    import gc

    assert gc.get_freeze_count() == 0
    with TaskRunner(_inherited_is_frozen_in_worker, (), workers=2) as runner:
        assert gc.get_freeze_count() == 0  # the parent's collector as it was
        got: list[tuple[int, bool]] = []
        runner.run([(), ()], lambda _i, r: got.append(r))
    assert len(got) == 2
    for frozen, hidden in got:
        assert frozen > 1000 and hidden  # every inherited object, this one among them
    gc.freeze()  # a caller that froze already (a console run) stays frozen
    try:
        with TaskRunner(_inherited_is_frozen_in_worker, (), workers=2) as runner:
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def _pid() -> int:
    import os

    return os.getpid()


def test_finish_lets_the_workers_exit_before_the_block_ends():
    """After finish() the workers exit on their own; leaving the block has waited for every one."""
    from multiprocessing.connection import wait as wait_ready

    with TaskRunner(_pid, (), workers=2) as runner:
        got: list[int] = []
        runner.run([(), (), ()], lambda _i, r: got.append(r))
        workers = list(runner._pool._processes.values())  # type: ignore[union-attr]
        assert {p.pid for p in workers} >= set(got) and len(workers) == 2
        runner.finish()
        runner.finish()  # twice is once
        # each exits without the block having ended (its sentinel is ready once it has; the
        # pool's own thread may reap it first, so its exit code can still read None here)
        assert all(wait_ready([p.sentinel], timeout=60) for p in workers)
    assert runner._pool is None
    # an error after finish() still leaves no worker behind
    with pytest.raises(RuntimeError), TaskRunner(_pid, (), workers=2) as runner:
        runner.run([()], lambda _i, r: None)
        workers = list(runner._pool._processes.values())  # type: ignore[union-attr]
        runner.finish()
        raise RuntimeError("the write failed")
    assert all(wait_ready([p.sentinel], timeout=0) for p in workers)
