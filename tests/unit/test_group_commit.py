"""Group commit's batches: units submitted together share one batch, with `in_flight`
above 1 too; then a unit submitted while every batch runs starts another at once (up to
`in_flight`), and close waits for them all."""

from __future__ import annotations

import asyncio
from typing import Any

from dogqueue.backend.kit.batching import GroupCommit


class Recorder:
    """A batch runner that holds every batch until released and records what it ran."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.release = asyncio.Event()

    async def run(self, units: list[str]) -> list[Any]:
        self.batches.append(units)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return [f"done {unit}" for unit in units]


def _group(recorder: Recorder, in_flight: int) -> GroupCommit[str]:
    return GroupCommit(recorder.run, max_batch=100, public=lambda e: e, in_flight=in_flight)


async def _settle() -> None:
    for _ in range(5):  # let the drainers take their units
        await asyncio.sleep(0)


async def test_one_in_flight_runs_units_submitted_together_as_one_batch() -> None:
    recorder = Recorder()
    group = _group(recorder, 1)
    first = [group.submit(unit) for unit in "abcd"]
    await _settle()
    later = group.submit("e")  # waits for the running batch
    await _settle()
    assert recorder.batches == [list("abcd")]
    recorder.release.set()
    assert await asyncio.gather(*first, later) == [f"done {u}" for u in "abcde"]
    assert recorder.batches == [list("abcd"), ["e"]] and recorder.most_running == 1


async def test_units_submitted_together_share_one_batch_with_two_in_flight() -> None:
    recorder = Recorder()
    group = _group(recorder, 2)
    futures = [group.submit(unit) for unit in "abcde"]
    await _settle()
    assert recorder.batches == [list("abcde")] and recorder.running == 1
    recorder.release.set()
    assert await asyncio.gather(*futures) == [f"done {u}" for u in "abcde"]


async def test_a_unit_submitted_while_a_batch_runs_starts_another_at_once() -> None:
    recorder = Recorder()
    group = _group(recorder, 2)
    first = group.submit("a")
    await _settle()
    second = group.submit("b")
    await _settle()
    assert recorder.batches == [["a"], ["b"]] and recorder.running == 2
    third = group.submit("c")  # both are busy: it waits for one of them
    await _settle()
    assert len(recorder.batches) == 2
    recorder.release.set()
    assert list(await asyncio.gather(first, second, third)) == ["done a", "done b", "done c"]
    assert recorder.most_running == 2


async def test_close_waits_for_every_batch_in_flight() -> None:
    recorder = Recorder()
    group = _group(recorder, 2)
    futures = [group.submit(unit) for unit in "ab"]
    await _settle()
    closing = asyncio.ensure_future(group.close())
    await _settle()
    assert not closing.done()
    recorder.release.set()
    await closing
    assert all(future.done() for future in futures)
