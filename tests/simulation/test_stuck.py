"""A soak's teardown that does not end in its bound says what is stuck: each task left,
the awaits it is suspended in (file and line), and what the backend still holds; the
run fails with that report rather than hanging or passing silently."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from pathlib import Path

import pytest

from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.testing.simulation import Simulation, run
from dogqueue.testing.simulation.soak import SoakLoop
from dogqueue.testing.simulation.stuck import describe_backend


class HangingBackend:
    """A backend whose close never ends (and that says what it holds)."""

    def __init__(self) -> None:
        self.never = asyncio.Event()

    async def close(self) -> None:
        await self.never.wait()

    def holding(self) -> str:
        return "3 units nobody runs"


async def _deaf(never: asyncio.Event) -> None:
    """Outlives every cancellation: waits for `never` again after each."""
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await _inner(never)


async def _inner(never: asyncio.Event) -> None:
    await never.wait()


def test_a_stuck_teardown_names_its_task_its_line_and_what_the_backend_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bound is only how long the teardown waits: nothing here ever ends.
    monkeypatch.setattr(run, "SOAK_TEARDOWN_SECONDS", 0.01)
    sim = Simulation(0, soak=True, plan=[])
    loop = sim.loop = SoakLoop()
    backend = sim.backend = HangingBackend()
    loop.create_task(_deaf(backend.never), name="deaf")
    loop.run_until_complete(asyncio.sleep(0))  # it starts, and waits
    sim._teardown()

    assert sim.failure is not None and sim.failure.name == "stuck teardown"
    report = "\n".join(sim._stuck)
    inner_line = inspect.getsourcelines(_inner)[1] + 1
    assert "cancelled tasks still going after 0.01 s; 1 tasks left" in report
    assert "task deaf (cancelling 1): _deaf" in report
    assert f"test_stuck.py:{inner_line} in _inner" in report
    assert "waits for <Future pending" in report
    assert "the backend's close still going" in report
    assert "task teardown: backend.close" in report
    assert "backend: 3 units nobody runs" in report
    assert loop.is_closed()


async def _spinning() -> None:
    """Outlives every cancellation without ever waiting: a livelock."""
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)


def test_a_teardown_the_loop_gives_up_on_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "TEARDOWN_STEPS", 1_000)
    sim = Simulation(0, soak=True, plan=[])
    loop = sim.loop = SoakLoop()
    sim.backend = HangingBackend()
    loop.create_task(_spinning(), name="spinning")
    loop.run_until_complete(asyncio.sleep(0))  # it starts
    sim._teardown()

    assert sim.failure is not None and sim.failure.name == "stuck teardown"
    report = "\n".join(sim._stuck)
    assert "cancelled tasks still going when the loop stopped with RuntimeError(" in report
    assert "a livelock" in report and "task spinning" in report


def test_a_teardown_that_ends_in_time_reports_nothing() -> None:
    sim = Simulation(0, soak=True, plan=[])
    loop = sim.loop = SoakLoop()
    sim.backend = HangingBackend()
    sim.backend.never.set()
    loop.create_task(_inner(asyncio.Event()), name="plain")
    sim._teardown()
    assert sim.failure is None and sim._stuck == []


def test_the_sqlite_backend_says_what_its_writer_holds(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        backend = SqliteBackend(tmp_path / "queue.db")
        await backend.open()
        try:
            idle = backend.holding()
            # Not small: it waits for the end of the turn, in the pending list.
            backend.writer.submit(lambda tx, now: None)
            waiting = backend.holding()
        finally:
            await backend.close()
        return [idle, waiting, backend.holding()]

    idle, waiting, closed = asyncio.run(scenario())
    assert idle.startswith("group commit: 0 pending, start none, drainer none")
    assert "thread idle" in idle and "closing False" in idle
    assert waiting.startswith("group commit: 1 pending, start due")
    assert closed == "closed"
    assert describe_backend(object()) == ["backend object: no holding() to report"]
