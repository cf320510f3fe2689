"""The kit's group commit with `run_alone`: a unit that is a batch by itself is offered
to it on the event loop, without a task, within its call when nothing else is ready to
run (a bounded number in a row); callers running together still share one batch; one it
declines runs the usual way; its failure reaches only its caller; and one submitted just
before `close` still gets its result."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest

from dogqueue.backend.kit.batching import MAX_AT_ONCE, GroupCommit
from dogqueue.core.errors import StorageError


class Recorder:
    """Runs units (ints) as `run` and `run_alone`, recording which took what."""

    def __init__(self, *, declines: bool = False, fails: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.alone: list[int] = []
        self.declines = declines
        self.fails = fails

    async def run(self, units: list[int]) -> list[Any]:
        self.batches.append(units)
        return [unit * 10 for unit in units]

    def run_alone(self, unit: int) -> list[Any] | None:
        if self.declines:
            return None
        if self.fails:
            raise ValueError("driver broke")
        self.alone.append(unit)
        return [unit * 10]


def _group(recorder: Recorder) -> GroupCommit[int]:
    return GroupCommit(
        recorder.run,
        max_batch=8,
        public=lambda error: StorageError(str(error)),
        run_alone=recorder.run_alone,
    )


async def test_a_lone_unit_runs_within_its_call_and_callers_together_share_a_batch() -> None:
    recorder = Recorder()
    group = _group(recorder)
    lone = group.submit(1)
    assert lone.done() and lone.result() == 10

    async def call(unit: int) -> Any:
        return await group.submit(unit)

    assert list(await asyncio.gather(call(2), call(3))) == [20, 30]
    assert recorder.alone == [1]
    assert recorder.batches == [[2, 3]]


async def test_lone_units_in_a_row_let_the_loop_turn_now_and_then() -> None:
    recorder = Recorder()
    group = _group(recorder)
    futures = [group.submit(unit) for unit in range(MAX_AT_ONCE + 1)]
    assert [future.done() for future in futures] == [True] * MAX_AT_ONCE + [False]

    assert await futures[-1] == MAX_AT_ONCE * 10
    assert group.submit(7).done()
    assert recorder.alone == [*range(MAX_AT_ONCE + 1), 7]


async def test_a_declined_lone_unit_runs_as_a_batch() -> None:
    recorder = Recorder(declines=True)
    assert await _group(recorder).submit(4) == 40
    assert recorder.batches == [[4]]


async def test_a_lone_unit_that_fails_fails_its_caller_only() -> None:
    group = _group(Recorder(fails=True))
    with pytest.raises(StorageError, match="driver broke"):
        await group.submit(5)


async def test_a_unit_submitted_just_before_close_gets_its_result() -> None:
    recorder = Recorder()
    group = _group(recorder)
    pending = group.submit(6)
    await group.close()
    assert pending.done() and pending.result() == 60


CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller")


@pytest.mark.parametrize("with_run_alone", [True, False])
async def test_a_batch_runs_in_no_callers_context(with_run_alone: bool) -> None:
    """A batch serves all its callers: the first one's context variables (its trace span,
    its job's run) are not the batch's, so they neither parent its driver calls nor live
    as long as it does."""
    seen: list[str | None] = []

    async def run(units: list[int]) -> list[Any]:
        seen.append(CALLER.get(None))
        await asyncio.sleep(0)
        seen.append(CALLER.get(None))
        return [unit * 10 for unit in units]

    group: GroupCommit[int] = GroupCommit(
        run,
        max_batch=8,
        public=lambda error: StorageError(str(error)),
        run_alone=(lambda unit: None) if with_run_alone else None,
    )

    async def call(name: str, unit: int) -> Any:
        CALLER.set(name)
        return await group.submit(unit)

    assert list(await asyncio.gather(call("first", 1), call("second", 2))) == [10, 20]
    assert seen == [None, None]
    assert CALLER.get(None) is None


def test_units_are_submitted_on_the_loop_running_now() -> None:
    """The loop a unit is submitted on is kept between calls (asking asyncio costs a
    system call) only while it runs on the submitting thread: a group commit used from
    one loop, then from another loop in another thread while the first still runs, then
    from a third once both stopped, resolves each caller's future on its own loop."""
    recorder = Recorder(declines=True)
    group = GroupCommit(recorder.run, max_batch=8, public=lambda error: error)
    first = asyncio.new_event_loop()
    runner = threading.Thread(target=first.run_forever, daemon=True)
    runner.start()
    try:
        on_first = asyncio.run_coroutine_threadsafe(_submitted(group, 1), first)
        assert on_first.result(timeout=10) == 10
        assert asyncio.run(_submitted(group, 2)) == 20  # `first` still runs, elsewhere
    finally:
        first.call_soon_threadsafe(first.stop)
        runner.join()
        first.close()
    assert asyncio.run(_submitted(group, 3)) == 30
    assert recorder.batches == [[1], [2], [3]]


async def _submitted(group: GroupCommit[int], unit: int) -> Any:
    return await group.submit(unit)
