"""The build's stage threads: order, errors in order, bounded look-ahead, stopping."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from csmoe_data.builder.background import Background, Stopped
from csmoe_data.builder.executors import TaskRunner
from csmoe_data.errors import CsmoeDataError


def test_items_come_out_in_order_through_two_stages() -> None:
    stop = threading.Event()

    def doubled(items: Background[int]) -> Iterator[int]:
        for i in items:
            yield 2 * i

    with (
        Background(range(50), 1, "a", stop) as first,
        Background(doubled(first), 2, "b", stop) as second,
    ):
        assert list(second) == [2 * i for i in range(50)]


def test_an_error_of_a_stage_is_raised_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise CsmoeDataError("bad batch 3")

    seen = []
    with Background(items()) as stage, pytest.raises(CsmoeDataError, match="bad batch 3"):
        for i in stage:
            seen.append(i)
    assert seen == [1, 2]


def test_the_stage_runs_at_most_depth_items_ahead() -> None:
    made = []
    release = threading.Event()

    def items() -> Iterator[int]:
        for i in range(10):
            made.append(i)
            yield i

    with Background(items(), depth=2) as stage:
        it = iter(stage)
        assert next(it) == 0
        release.wait(0.5)  # give the thread time to run ahead as far as it may
        # one item taken, two waiting in the queue, one made and blocked on the full queue
        assert len(made) <= 4
        assert list(it) == list(range(1, 10))


def test_leaving_the_block_stops_the_stage_and_closes_its_generator() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with Background(endless()) as stage:
        for i in stage:
            if i == 3:
                break
    assert closed.wait(5)
    assert stage.stop.is_set()
    with pytest.raises(Stopped):
        stage.check()


def test_a_signal_delivered_to_another_thread_interrupts_the_consumer() -> None:
    # the kernel may hand SIGTERM or SIGINT to any thread; the consumer waiting for a stage that
    # hangs (workers on a stuck file system) must still see the KeyboardInterrupt in time
    release = threading.Event()

    def hung() -> Iterator[int]:
        release.wait()
        yield 1

    def signal_from_this_thread() -> None:
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    # a hung stage that comes back after a while, so that a consumer deaf to the signal makes the
    # test fail rather than hang: the interrupt must come while the stage still hangs
    unhang = threading.Timer(5, release.set)
    unhang.start()
    with Background(hung()) as stage, pytest.raises(KeyboardInterrupt):
        threading.Timer(0.2, signal_from_this_thread).start()
        try:
            list(stage)
        finally:
            interrupted_while_hung = not release.is_set()
            release.set()  # the stage ends, so leaving the block need not wait for it
    unhang.cancel()
    assert interrupted_while_hung


def test_a_pool_forks_its_workers_on_entry() -> None:
    with TaskRunner(abs, (), workers=2) as runner:
        pool = runner._pool
        assert pool is not None
        assert len(pool._processes) == 2  # forked here, not by whichever thread submits first
        results: dict[int, int] = {}
        runner.run([(-1,), (-2,), (3,)], results.__setitem__)
    assert results == {0: 1, 1: 2, 2: 3}
