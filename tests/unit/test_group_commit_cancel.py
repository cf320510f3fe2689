"""The kit's group commit when the task running its batches is cancelled (the event loop
shutting down): the batch under way may have committed, so it is never run again (its
callers get StorageError); a split cut short keeps the results of the units that ran;
the cancellation ends the task; and `close` still gives every unit left pending its
result, without taking the drainer's cancellation for its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from dogqueue.backend.kit.batching import GroupCommit
from dogqueue.core.errors import StorageError


class Gated:
    """Runs batches of ints, each waiting for the test to let it land; a batch holding
    a unit in `fails` raises once it lands."""

    def __init__(self, fails: frozenset[int] = frozenset()) -> None:
        self.started: list[list[int]] = []
        self.gates: list[asyncio.Event] = []
        self.fails = fails
        self.released = False

    def release(self) -> None:
        """Let every batch land, now and from now on (a failed test must not leave one
        waiting: the loop's shutdown would wait for it)."""
        self.released = True
        for gate in self.gates:
            gate.set()

    async def run(self, units: list[int]) -> list[Any]:
        gate = asyncio.Event()
        self.started.append(units)
        self.gates.append(gate)
        if not self.released:
            await gate.wait()
        if self.fails.intersection(units):
            raise ValueError("a unit broke the batch")
        return [unit * 10 for unit in units]


def _group(runner: Gated) -> GroupCommit[int]:
    return GroupCommit(runner.run, max_batch=8, public=lambda error: StorageError(str(error)))


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def _cancel_the_others() -> None:
    """What a loop's shutdown does: cancel every task but this one."""
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()


@contextlib.contextmanager
def released(runner: Gated) -> Iterator[Gated]:
    try:
        yield runner
    finally:
        runner.release()


async def test_a_batch_whose_task_is_cancelled_is_never_run_again() -> None:
    with released(Gated()) as runner:
        group = _group(runner)
        callers = [group.submit(1), group.submit(2)]
        await _turns()
        assert runner.started == [[1, 2]]

        _cancel_the_others()
        await _turns()
        runner.gates[0].set()  # it lands after all (a thread commits on)
        await _turns()

        assert runner.started == [[1, 2]]
        for caller in callers:
            with pytest.raises(StorageError, match="may or may not have committed"):
                await caller
        await group.close()
        assert runner.started == [[1, 2]]


async def test_a_split_cut_short_keeps_what_ran_and_close_runs_the_rest() -> None:
    with released(Gated(fails=frozenset({2}))) as runner:
        group = _group(runner)
        one, two, three = group.submit(1), group.submit(2), group.submit(3)
        await _turns()
        runner.gates[0].set()  # the batch fails: each unit alone, in turn
        await _turns()
        runner.gates[1].set()
        await _turns()
        assert runner.started == [[1, 2, 3], [1], [2]]
        assert one.done() and one.result() == 10  # as soon as it landed alone

        _cancel_the_others()  # while 2 runs alone
        await _turns()
        assert not three.done()
        closing = asyncio.ensure_future(group.close())
        await _turns()
        assert runner.started == [[1, 2, 3], [1], [2], [3]]
        runner.gates[3].set()
        await closing

        with pytest.raises(StorageError, match="interrupted"):
            await two
        assert await three == 30


async def test_close_runs_what_a_drainer_cancelled_before_its_first_step_left() -> None:
    with released(Gated()) as runner:
        group = _group(runner)
        unit = group.submit(1)
        _cancel_the_others()  # the drainer, made by submit, has not run yet
        await _turns()
        closing = asyncio.ensure_future(group.close())
        await _turns()
        assert runner.started == [[1]]
        runner.gates[0].set()
        await closing
        assert await unit == 10


async def test_close_goes_on_when_the_drainer_it_waits_for_is_cancelled() -> None:
    with released(Gated()) as runner:
        group = _group(runner)
        first = group.submit(1)
        await _turns()
        second = group.submit(2)  # for the next batch
        closing = asyncio.ensure_future(group.close())
        await _turns()
        for task in asyncio.all_tasks():
            if task not in (asyncio.current_task(), closing):
                task.cancel()
        await _turns()
        assert not closing.done()  # not cancelled with the drainer: it runs what is left
        assert runner.started == [[1], [2]]
        runner.gates[1].set()
        await closing
        with pytest.raises(StorageError, match="interrupted"):
            await first
        assert await second == 20
