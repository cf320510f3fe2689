"""The worker runs the schedules it is given (fake clock, every backend): due ticks are
enqueued at start and at each minute boundary of the clock, once however many workers
run the same schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dogqueue import (
    FakeClock,
    InvalidInput,
    JobStatus,
    QueueAdapter,
    QueueCtx,
    Schedule,
    Worker,
)
from dogqueue.backend.base import EngineBackend
from dogqueue.controls import run_schedule_now
from tests.runtime.helpers import Echo, Probe, until

ACME = QueueCtx("acme")
T0 = datetime(2030, 1, 1, tzinfo=UTC)


async def make_adapter(backend: EngineBackend) -> QueueAdapter[Probe]:
    adapter: QueueAdapter[Probe] = QueueAdapter(backend)
    await adapter.register_job(Echo)
    return adapter


def worker(adapter: QueueAdapter[Probe], probe: Probe, **options: Any) -> Worker[Probe]:
    return Worker(adapter, context=probe, handle_signals=False, tenants=[ACME], **options)


async def completed(backend: EngineBackend) -> int:
    jobs = await backend.projected_jobs()
    return sum(job.status is JobStatus.COMPLETED for job in jobs.values())


async def test_a_worker_runs_its_schedules_at_each_minute_of_its_clock(
    backend: EngineBackend, clock: FakeClock
) -> None:
    clock.set(T0)
    adapter, probe = await make_adapter(backend), Probe()
    every_minute = Schedule("tick", "* * * * *", Echo(text="tick"), tenant=ACME)
    async with worker(adapter, probe, schedules=[every_minute]) as running:
        await until(lambda: _at_least(backend, 1))  # the tick at start
        clock.advance(timedelta(minutes=1))
        running.wake()
        await until(lambda: _at_least(backend, 2))
        clock.advance(timedelta(minutes=30))  # a pause: the latest tick only
        running.wake()
        await until(lambda: _at_least(backend, 3))
    assert probe.runs == {"tick": 3}
    last = await backend.latest_tick(ACME, "tick")
    assert last is not None and last[0] == T0 + timedelta(minutes=31)


async def test_workers_sharing_schedules_enqueue_each_tick_once(
    backend: EngineBackend, clock: FakeClock
) -> None:
    clock.set(T0)
    adapter, probe = await make_adapter(backend), Probe()
    schedules = [
        Schedule("tick", "* * * * *", Echo(text="tick"), tenant=ACME),
        Schedule("five", "*/5 * * * *", Echo(text="five"), tenant=ACME),
    ]
    async with (
        worker(adapter, probe, schedules=schedules) as first,
        worker(adapter, probe, schedules=schedules) as second,
    ):
        await until(lambda: _at_least(backend, 2))
        for _ in range(10):
            clock.advance(timedelta(minutes=1))
            first.wake()
            second.wake()
            await until(lambda: _latest_is(backend, clock()))
        await until(lambda: _at_least(backend, 11 + 3))
    assert probe.runs == {"tick": 11, "five": 3}


async def _at_least(backend: EngineBackend, n: int) -> bool:
    return await completed(backend) >= n


async def _latest_is(backend: EngineBackend, tick: datetime) -> bool:
    latest = await backend.latest_tick(ACME, "tick")
    return latest is not None and latest[0] == tick


async def test_schedules_must_be_a_list_of_schedule(backend: EngineBackend) -> None:
    adapter = await make_adapter(backend)
    for bad in ("tick", [Echo(text="x")]):
        with pytest.raises(InvalidInput) as refused:
            Worker(adapter, schedules=bad)  # type: ignore[arg-type]
        assert refused.value.field == "schedules"


async def test_a_worker_runs_a_schedule_now_when_an_operator_asks(
    backend: EngineBackend, clock: FakeClock
) -> None:
    clock.set(T0)  # midnight: the 03:00 tick is far
    adapter, probe = await make_adapter(backend), Probe()
    nightly = Schedule("nightly", "0 3 * * *", Echo(text="nightly"), tenant=ACME)
    async with worker(adapter, probe, schedules=[nightly]):
        await run_schedule_now(backend, ACME, "nightly", actor="cli:ops")
        await until(lambda: _at_least(backend, 1))
    assert probe.runs == {"nightly": 1}
    assert await backend.latest_tick(ACME, "nightly") is None
