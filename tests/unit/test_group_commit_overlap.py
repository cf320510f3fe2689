"""The kit's group commit with `overlaps`: batches of overlapping units (plain enqueues)
run two at a time, a heavy window of them is cut in halves, any other unit runs in a
batch with nothing beside it, each batch's callers get their results when that batch
lands, a failing batch is split within its own lane, and `close` waits for every lane."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from dogqueue.backend.kit.batching import MAX_IN_FLIGHT, MIN_HALF, GroupCommit
from dogqueue.core.errors import StorageError

#: A unit: (name, jobs it creates if it may overlap, else 0).
Unit = tuple[str, int]


class Gated:
    """Runs batches that wait for the test to let each one land."""

    def __init__(self) -> None:
        self.started: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.gates: list[asyncio.Event] = []
        self.fails: set[str] = set()

    async def run(self, units: list[Unit]) -> list[Any]:
        gate = asyncio.Event()
        self.started.append([name for name, _ in units])
        self.gates.append(gate)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await gate.wait()
        finally:
            self.running -= 1
        if any(name in self.fails for name, _ in units):
            raise ValueError("a unit broke the batch")
        return [name.upper() for name, _ in units]

    def open(self, index: int) -> None:
        self.gates[index].set()


def _group(runner: Gated) -> GroupCommit[Unit]:
    return GroupCommit(
        runner.run,
        max_batch=64,
        public=lambda error: StorageError(str(error)),
        overlaps=lambda unit: unit[1],
    )


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_second_batch_of_enqueues_starts_while_the_first_is_in_flight() -> None:
    runner = Gated()
    group = _group(runner)
    first = group.submit(("a", 1))
    await _turns()
    second = group.submit(("b", 1))
    await _turns()
    assert runner.started == [["a"], ["b"]]
    runner.open(1)  # the second lands first: its caller need not wait for the first
    assert await second == "B"
    assert not first.done()
    runner.open(0)
    assert await first == "A"
    assert runner.most_running == MAX_IN_FLIGHT


async def test_no_more_than_two_batches_are_in_flight() -> None:
    runner = Gated()
    group = _group(runner)
    futures = [group.submit(("a", 1))]
    for name in "bc":
        await _turns()
        futures.append(group.submit((name, 1)))
    await _turns()
    assert runner.started == [["a"], ["b"]]
    runner.open(0)
    await _turns()
    assert runner.started == [["a"], ["b"], ["c"]]
    runner.open(1)
    runner.open(2)
    assert await asyncio.gather(*futures) == ["A", "B", "C"]


async def test_a_unit_that_may_not_overlap_runs_with_nothing_beside_it() -> None:
    runner = Gated()
    group = _group(runner)
    enqueue = group.submit(("a", 1))
    await _turns()
    claim = group.submit(("claim", 0))
    later = group.submit(("b", 1))
    await _turns()
    assert runner.started == [["a"]]  # the claim waits for the enqueue to land
    runner.open(0)
    await _turns()
    assert runner.started == [["a"], ["claim", "b"]]  # one batch, as without overlaps
    late = group.submit(("c", 1))
    await _turns()
    assert len(runner.started) == 2  # nothing starts beside it
    runner.open(1)
    await _turns()
    assert runner.started[2] == ["c"]
    runner.open(2)
    assert list(await asyncio.gather(enqueue, claim, later, late)) == ["A", "CLAIM", "B", "C"]


async def test_a_heavy_window_of_enqueues_goes_out_in_two_halves() -> None:
    runner = Gated()
    group = _group(runner)
    heavy = [group.submit((f"h{i}", MIN_HALF // 2)) for i in range(8)]
    await _turns()
    assert runner.started == [["h0", "h1", "h2", "h3"], ["h4", "h5", "h6", "h7"]]
    runner.open(0)
    runner.open(1)
    await asyncio.gather(*heavy)
    few = [group.submit((f"f{i}", 1)) for i in range(8)]
    await _turns()
    assert runner.started[2] == [f"f{i}" for i in range(8)]  # light: one batch
    runner.open(2)
    await asyncio.gather(*few)


async def test_a_failing_batch_fails_only_its_unit_and_close_waits_for_both_lanes() -> None:
    runner = Gated()
    runner.fails.add("bad")
    group = _group(runner)
    first = group.submit(("a", 1))
    await _turns()
    good, bad = group.submit(("good", 1)), group.submit(("bad", 1))
    await _turns()
    closing = asyncio.ensure_future(group.close())
    runner.open(1)  # the second batch fails and is split: each unit alone, in turn
    await _turns()
    runner.open(2)
    await _turns()
    assert runner.started[2:] == [["good"], ["bad"]]
    assert await good == "GOOD"  # as soon as it landed alone
    runner.open(3)
    with pytest.raises(StorageError):
        await bad
    await _turns()
    assert not closing.done()  # the first lane is still in flight
    runner.open(0)
    await closing
    assert first.result() == "A"


CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller")


async def test_overlapping_batches_run_in_no_callers_context() -> None:
    seen: list[str | None] = []

    async def run(units: list[Unit]) -> list[Any]:
        seen.append(CALLER.get(None))
        await asyncio.sleep(0)
        return [name for name, _ in units]

    group: GroupCommit[Unit] = GroupCommit(
        run, max_batch=8, public=lambda error: error, overlaps=lambda unit: unit[1]
    )

    async def call(name: str, jobs: int) -> Any:
        CALLER.set(name)
        return await group.submit((name, jobs))

    first = asyncio.ensure_future(call("first", 1))
    await asyncio.sleep(0)
    assert list(await asyncio.gather(first, call("second", 1), call("claim", 0))) == [
        "first",
        "second",
        "claim",
    ]
    assert seen == [None, None, None]
