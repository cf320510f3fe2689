"""The kit's group commit with `overlaps`: batches of overlapping units (plain enqueues)
run two at a time, a heavy window of them is cut in halves, any other unit runs in a
batch with nothing beside it, each batch's callers get their results when that batch
lands, a failing batch is split within its own lane, and `close` waits for every lane.
With kinds (`beside`): a claim beside a settle, a kind not allowed beside the batch in
flight waits in its turn, a unit never starts beside a batch taken while it waited, and
units submitted together run as one batch in order unless the window is heavy."""

from __future__ import annotations

import asyncio
import contextvars
import operator
from typing import Any

import pytest

from dogqueue.backend.kit.batching import MAX_IN_FLIGHT, MIN_HALF, GroupCommit, Lane
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


def _plain(unit: Unit) -> Lane | None:
    """Units with jobs are enqueues, which overlap; the others overlap nothing."""
    return ("enqueue", unit[1]) if unit[1] else None


def _kind(unit: Unit) -> Lane | None:
    """Units named `c…` are claims, `s…` settles, `e…` enqueues; `x…` overlap nothing."""
    kind = {"c": "claim", "s": "settle", "e": "enqueue"}.get(unit[0][0])
    return None if kind is None else (kind, unit[1])


def _drain_pairs(kind: str, other: str) -> bool:
    return kind == other or {kind, other} == {"claim", "settle"}


def _group(runner: Gated, *, kinds: bool = False) -> GroupCommit[Unit]:
    """Enqueues only (`_plain`), or with `kinds` claims, settles and enqueues (`_kind`)."""
    return GroupCommit(
        runner.run,
        max_batch=64,
        public=lambda error: StorageError(str(error)),
        overlaps=_kind if kinds else _plain,
        beside=_drain_pairs if kinds else operator.eq,
    )


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.parametrize("kinds", [False, True], ids=["enqueues", "claim-beside-settle"])
async def test_a_second_batch_starts_while_the_first_is_in_flight(kinds: bool) -> None:
    runner = Gated()
    group = _group(runner, kinds=True) if kinds else _group(runner)
    a, b = ("s1", "c1") if kinds else ("a", "b")
    first = group.submit((a, 1))
    await _turns()
    second = group.submit((b, 1))
    await _turns()
    assert runner.started == [[a], [b]]
    runner.open(1)  # the second lands first: its caller need not wait for the first
    assert await second == b.upper()
    assert not first.done()
    runner.open(0)
    assert await first == a.upper()
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
        run, max_batch=8, public=lambda error: error, overlaps=_plain
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


async def _one_then_two(group: GroupCommit[Unit], *names: str) -> list[asyncio.Future[Any]]:
    """Submit the first unit, let its batch start, then submit the other two together."""
    futures = [group.submit((names[0], 1))]
    await _turns()
    futures += [group.submit((name, 1)) for name in names[1:]]
    await _turns()
    return futures


async def test_a_kind_not_allowed_beside_the_batch_in_flight_waits_and_keeps_its_turn() -> None:
    runner = Gated()
    group = _group(runner, kinds=True)
    settle, enqueue, claim = await _one_then_two(group, "s1", "e1", "c1")
    assert runner.started == [["s1"]]  # c1 may run beside s1, but not ahead of e1
    runner.open(0)
    await _turns()
    assert runner.started == [["s1"], ["e1", "c1"]]  # together, in order, as submitted
    runner.open(1)
    assert list(await asyncio.gather(settle, enqueue, claim)) == ["S1", "E1", "C1"]


async def test_a_unit_never_starts_beside_a_batch_taken_while_it_waited() -> None:
    runner = Gated()
    group = _group(runner, kinds=True)
    first, settle, claim = await _one_then_two(group, "c0", "s1", "c2")
    assert runner.started == [["c0"], ["s1"]]  # s1 beside c0: submitted after c0 left
    runner.open(0)
    await _turns()
    assert len(runner.started) == 2  # c2 waited with s1: it must see what s1 writes
    runner.open(1)
    await _turns()
    assert runner.started[2] == ["c2"]
    runner.open(2)
    assert list(await asyncio.gather(first, settle, claim)) == ["C0", "S1", "C2"]


async def test_a_heavy_window_of_two_kinds_goes_out_as_two_batches_side_by_side() -> None:
    runner = Gated()
    group = _group(runner, kinds=True)
    units = [("s1", 100), ("s2", 100), ("c1", 300), ("c2", 300)]
    futures = [group.submit(unit) for unit in units]
    await _turns()
    assert runner.started == [["s1", "s2"], ["c1", "c2"]]  # one batch holds one kind
    late = group.submit(("s3", 1))
    runner.open(1)
    await _turns()
    assert runner.started[2] == ["s3"]
    runner.open(0)
    runner.open(2)
    assert list(await asyncio.gather(*futures, late)) == ["S1", "S2", "C1", "C2", "S3"]


async def test_a_light_window_of_two_kinds_runs_whole_in_order() -> None:
    runner = Gated()
    group = _group(runner, kinds=True)
    futures = [group.submit(unit) for unit in (("c1", 1), ("s1", 1), ("c2", 1))]
    await _turns()
    assert runner.started == [["c1", "s1", "c2"]]  # as without `overlaps`
    runner.open(0)
    assert list(await asyncio.gather(*futures)) == ["C1", "S1", "C2"]


async def test_a_window_with_a_unit_that_overlaps_nothing_still_runs_whole_when_idle() -> None:
    runner = Gated()
    group = _group(runner, kinds=True)
    futures = [group.submit(unit) for unit in (("s1", 1), ("x1", 0), ("c1", 1))]
    late = group.submit(("s2", 1))
    await _turns()
    assert runner.started == [["s1", "x1", "c1", "s2"]]  # as without `overlaps`
    runner.open(0)
    assert list(await asyncio.gather(*futures, late)) == ["S1", "X1", "C1", "S2"]
