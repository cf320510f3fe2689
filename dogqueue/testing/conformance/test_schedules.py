"""Schedules on every backend: exactly one job per (schedule, tick) under concurrent
callers, the catch-up policy, time zones and daylight-saving days, and refused input."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from dogqueue import (
    FakeClock,
    InvalidInput,
    InvalidJobType,
    Job,
    QueueAdapter,
    QueueCtx,
    Schedule,
    enqueue_due,
)
from dogqueue.backend.contract import Backend
from dogqueue.core.cron import ScheduleSpec, tick_key
from dogqueue.schedules import schedule_states
from dogqueue.testing.conformance.fixtures import hook
from dogqueue.testing.factories import BackendFactory

from .helpers import log_size, message

ACME = QueueCtx("acme")
T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Report(Job[None, None]):
    JOB_TYPE = "report"

    async def execute(self, ctx: None) -> None:
        return None


async def adapter_for(backend: Backend) -> QueueAdapter[None]:
    adapter: QueueAdapter[None] = QueueAdapter(backend)
    await adapter.register_job(Report)
    return adapter


async def ticks_of(backend: Backend) -> Counter[tuple[str, str]]:
    """How many jobs hold each schedule key, per (tenant, key)."""
    jobs = await backend.projected_jobs()
    return Counter(
        (job.tenant_id, job.message.idempotency_key)
        for job in jobs.values()
        if job.message.idempotency_key is not None
    )


async def run_clock(
    adapter: QueueAdapter[None],
    schedules: Sequence[Schedule],
    clock: FakeClock,
    until: datetime,
    step: timedelta,
) -> list[str]:
    """Call enqueue_due at every step of the clock up to `until`."""
    ids: list[str] = []
    while clock() <= until:
        ids += await enqueue_due(adapter, schedules)
        clock.advance(step)
    return ids


def local_days(backend_jobs: dict[Any, Any], zone: str) -> Counter[str]:
    """How many jobs ran on each local date, by their run_at."""
    return Counter(
        job.run_at.astimezone(ZoneInfo(zone)).date().isoformat() for job in backend_jobs.values()
    )


async def test_concurrent_callers_enqueue_each_tick_once(
    backend: Backend,
    backend_factory: BackendFactory,
    clock: FakeClock,
) -> None:
    reopen = hook(backend_factory, "reopen")
    clock.set(T0)
    schedules = [
        Schedule("every-minute", "* * * * *", Report(), tenant="acme"),
        Schedule("every-7", "*/7 * * * *", Report(), tenant="acme", catch_up=5),
        Schedule("every-minute", "* * * * *", Report(), tenant="globex"),
    ]
    others = [reopen(backend), reopen(backend)]  # more handles on the same storage
    for other in others:
        await other.open()
    try:
        adapters = [await adapter_for(b) for b in [backend, *others]]
        for _ in range(30):
            # Three backend objects (processes, for SQLite and PostgreSQL), each with
            # three callers at once, all at the same moment.
            results = await asyncio.gather(
                *(enqueue_due(a, schedules) for a in adapters for _ in range(3))
            )
            ids = [i for result in results for i in result]
            assert len(ids) == len(set(ids))
            clock.advance(timedelta(minutes=1))
    finally:
        for other in others:
            await other.close()
    counts = await ticks_of(backend)
    assert set(counts.values()) == {1}
    minutes = [T0 + timedelta(minutes=m) for m in range(30)]
    assert {key for tenant, key in counts if tenant == "globex"} == {
        tick_key("every-minute", m) for m in minutes
    }
    sevens = {key for tenant, key in counts if key.startswith("dogqueue.cron:every-7@")}
    assert sevens == {tick_key("every-7", m) for m in minutes if m.minute % 7 == 0}


async def test_a_tick_job_runs_at_its_tick_with_the_schedule_options(
    backend: Backend, clock: FakeClock
) -> None:
    clock.set(T0)
    adapter = await adapter_for(backend)
    schedule = Schedule("hourly", "@hourly", Report(), tenant=ACME, queue="reports", max_retries=7)
    [job_id] = await enqueue_due(adapter, [schedule])
    info = await backend.get_job(ACME, job_id)
    assert info.message.idempotency_key == "dogqueue.cron:hourly@2030-01-01T00:00Z"
    assert (info.message.queue, info.message.max_retries, info.run_at) == ("reports", 7, T0)
    lease = await backend.dequeue(ACME, ["reports"])
    assert lease is not None and lease.job_id == job_id
    assert await backend.latest_tick(ACME, "hourly") == (T0, job_id)
    assert await backend.latest_tick(ACME, "other") is None


async def test_missed_ticks_run_the_latest_only_by_default(
    backend: Backend, clock: FakeClock
) -> None:
    clock.set(T0)
    adapter = await adapter_for(backend)
    schedule = Schedule("q", "*/15 * * * *", Report(), tenant="acme")
    assert len(await enqueue_due(adapter, [schedule])) == 1
    clock.advance(timedelta(hours=2, minutes=5))  # eight ticks missed
    [job_id] = await enqueue_due(adapter, [schedule])
    assert (await backend.get_job(ACME, job_id)).run_at == T0 + timedelta(hours=2)
    assert await enqueue_due(adapter, [schedule]) == []


async def test_missed_ticks_catch_up_at_most_n_oldest_first(
    backend: Backend, clock: FakeClock
) -> None:
    clock.set(T0)
    adapter = await adapter_for(backend)
    schedule = Schedule("q", "*/15 * * * *", Report(), tenant="acme", catch_up=3)
    await enqueue_due(adapter, [schedule])
    clock.advance(timedelta(minutes=31))  # two ticks missed: both run
    ids = await enqueue_due(adapter, [schedule])
    runs = [(await backend.get_job(ACME, i)).run_at for i in ids]
    assert runs == [T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)]
    clock.advance(timedelta(hours=5))  # twenty missed: the newest three run
    ids = await enqueue_due(adapter, [schedule])
    runs = [(await backend.get_job(ACME, i)).run_at for i in ids]
    end = T0 + timedelta(hours=5, minutes=30)
    assert runs == [end - timedelta(minutes=30), end - timedelta(minutes=15), end]


async def test_a_new_schedule_waits_for_its_next_tick_unless_one_just_came(
    backend: Backend, clock: FakeClock
) -> None:
    clock.set(T0 + timedelta(hours=10))
    adapter = await adapter_for(backend)
    nightly = Schedule("nightly", "30 2 * * *", Report(), tenant="acme", catch_up=5)
    assert await enqueue_due(adapter, [nightly]) == []
    clock.set(T0 + timedelta(days=1, hours=2, minutes=30, seconds=40))
    [job_id] = await enqueue_due(adapter, [nightly])
    assert (await backend.get_job(ACME, job_id)).run_at == T0 + timedelta(
        days=1, hours=2, minutes=30
    )


async def test_schedule_names_and_tenants_are_separate(backend: Backend, clock: FakeClock) -> None:
    clock.set(T0)
    adapter = await adapter_for(backend)
    short = Schedule("nightly", "0 * * * *", Report(), tenant="acme")
    longer = Schedule("nightly-eu", "*/5 * * * *", Report(), tenant="acme")
    elsewhere = Schedule("nightly", "0 * * * *", Report(), tenant="globex")
    assert len(await enqueue_due(adapter, [short, longer, elsewhere])) == 3
    clock.advance(timedelta(minutes=5))
    # nightly-eu's newer tick is not nightly's: nightly has nothing due.
    assert len(await enqueue_due(adapter, [short, longer, elsewhere])) == 1
    assert (await backend.latest_tick(ACME, "nightly"))[0] == T0  # type: ignore[index]
    states = await schedule_states(adapter, [short, longer])
    assert [(s.name, s.last_tick, s.next_tick) for s in states] == [
        ("nightly", T0, T0 + timedelta(hours=1)),
        ("nightly-eu", T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)),
    ]


async def test_a_time_zone_places_the_ticks(backend: Backend, clock: FakeClock) -> None:
    clock.set(datetime(2030, 1, 1, 3, 30, tzinfo=UTC))
    adapter = await adapter_for(backend)
    kolkata = Schedule("morning", "0 9 * * *", Report(), tenant="acme", timezone="Asia/Kolkata")
    [job_id] = await enqueue_due(adapter, [kolkata])  # 09:00 in Kolkata is 03:30 UTC
    assert (await backend.get_job(ACME, job_id)).run_at == clock()


@pytest.mark.parametrize(
    ("zone", "start", "expected_utc"),
    [
        # Spring forward: 02:30 does not exist; the job runs once, at 03:00 EDT.
        ("America/New_York", datetime(2030, 3, 9, 12), datetime(2030, 3, 10, 7, 0)),
        # Fall back: 02:30 happens twice; the job runs once, at the first (CEST).
        ("Europe/Berlin", datetime(2030, 10, 26, 12), datetime(2030, 10, 27, 0, 30)),
        ("Europe/Berlin", datetime(2030, 3, 30, 12), datetime(2030, 3, 31, 1, 0)),
    ],
)
async def test_a_fixed_time_job_runs_once_on_a_daylight_saving_day(
    backend: Backend,
    clock: FakeClock,
    zone: str,
    start: datetime,
    expected_utc: datetime,
) -> None:
    begin = start.replace(tzinfo=ZoneInfo(zone))
    clock.set(begin)
    adapter = await adapter_for(backend)
    daily = Schedule("daily", "30 2 * * *", Report(), tenant="acme", timezone=zone)
    await run_clock(adapter, [daily], clock, begin + timedelta(days=2), timedelta(minutes=10))
    jobs = await backend.projected_jobs()
    runs = sorted(job.run_at for job in jobs.values())
    assert set(local_days(jobs, zone).values()) == {1}  # one job per local day
    assert expected_utc.replace(tzinfo=UTC) in runs
    assert len(runs) == 2


async def test_an_hourly_job_runs_every_real_hour_across_fall_back(
    backend: Backend, clock: FakeClock
) -> None:
    zone = ZoneInfo("Europe/Berlin")
    begin = datetime(2030, 10, 27, 0, 0, tzinfo=zone)
    clock.set(begin)
    adapter = await adapter_for(backend)
    hourly = Schedule("hourly", "0 * * * *", Report(), tenant="acme", timezone=zone)
    await run_clock(adapter, [hourly], clock, begin + timedelta(hours=24), timedelta(minutes=20))
    jobs = await backend.projected_jobs()
    # The local day has 25 hours; the first tick (00:00) counts, the next midnight too.
    assert len(jobs) == 26
    assert local_days(jobs, "Europe/Berlin")["2030-10-27"] == 25


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("cron", lambda: Schedule("s", "61 * * * *", Report(), tenant="acme")),
        ("cron", lambda: Schedule("s", "* * * *", Report(), tenant="acme")),
        ("cron", lambda: Schedule("s", "0 * * * * *", Report(), tenant="acme")),
        ("cron", lambda: Schedule("s", "@reboot", Report(), tenant="acme")),
        ("cron", lambda: Schedule("s", "0 0 30 2 *", Report(), tenant="acme")),
        ("cron", lambda: Schedule("s", 5, Report(), tenant="acme")),  # type: ignore[arg-type]
        ("timezone", lambda: Schedule("s", "@daily", Report(), tenant="a", timezone="Mars/Base")),
        ("timezone", lambda: Schedule("s", "@daily", Report(), tenant="a", timezone="")),
        ("name", lambda: Schedule("", "@daily", Report(), tenant="acme")),
        ("name", lambda: Schedule("a@b", "@daily", Report(), tenant="acme")),
        ("name", lambda: Schedule("x" * 201, "@daily", Report(), tenant="acme")),
        ("catch_up", lambda: Schedule("s", "@daily", Report(), tenant="acme", catch_up=0)),
        ("job", lambda: Schedule("s", "@daily", "report", tenant="acme")),  # type: ignore[arg-type]
        ("tenant", lambda: Schedule("s", "@daily", Report(), tenant="")),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(field: str, make: Callable[[], Any]) -> None:
    with pytest.raises(InvalidInput) as refused:
        make()
    assert refused.value.field == field


async def test_bad_calls_append_nothing(backend: Backend, clock: FakeClock) -> None:
    clock.set(T0)
    adapter = await adapter_for(backend)
    good = Schedule("s", "* * * * *", Report(), tenant="acme")
    spec = good.spec(adapter)
    before = await log_size(backend)
    bad_calls: list[tuple[str, Any]] = [
        ("schedules", enqueue_due(adapter, [good, "nightly"])),  # type: ignore[list-item]
        ("schedules", enqueue_due(adapter, [good, good])),
        ("schedules", enqueue_due(adapter, good)),  # type: ignore[arg-type]
        ("now", enqueue_due(adapter, [good], now=datetime(2030, 1, 1))),
        ("name", backend.enqueue_ticks(ACME, msgspec.structs.replace(spec, name="a@b"), T0)),
        ("cron", backend.enqueue_ticks(ACME, msgspec.structs.replace(spec, cron="@hourly"), T0)),
        ("timezone", backend.enqueue_ticks(ACME, msgspec.structs.replace(spec, timezone="X"), T0)),
        ("catch_up", backend.enqueue_ticks(ACME, msgspec.structs.replace(spec, catch_up=0), T0)),
        ("queue", backend.enqueue_ticks(ACME, _with_message(spec, queue=""), T0)),
        ("schedule", backend.enqueue_ticks(ACME, "s", T0)),  # type: ignore[arg-type]
        ("tenant_id", backend.enqueue_ticks(QueueCtx(""), spec, T0)),
        ("now", backend.enqueue_ticks(ACME, spec, datetime(2030, 1, 1))),
        ("name", backend.latest_tick(ACME, "")),
    ]
    for field, call in bad_calls:
        with pytest.raises(InvalidInput) as refused:
            await call
        assert refused.value.field == field
    unregistered: QueueAdapter[None] = QueueAdapter(backend)
    with pytest.raises(InvalidJobType):
        await enqueue_due(unregistered, [good])
    assert await log_size(backend) == before


def _with_message(spec: ScheduleSpec, **changes: Any) -> ScheduleSpec:
    return msgspec.structs.replace(spec, message=msgspec.structs.replace(spec.message, **changes))


async def test_a_key_like_a_tick_taken_by_hand_counts_as_that_tick(
    backend: Backend, clock: FakeClock
) -> None:
    clock.set(T0)
    adapter = await adapter_for(backend)
    taken = await backend.enqueue(ACME, message(idempotency_key=tick_key("s", T0)))
    assert await enqueue_due(adapter, [Schedule("s", "* * * * *", Report(), tenant="acme")]) == []
    assert await backend.latest_tick(ACME, "s") == (T0, taken)


async def test_a_key_in_the_namespace_that_is_no_tick_never_gives_a_tick_two_jobs(
    backend: Backend, clock: FakeClock
) -> None:
    clock.set(T0)
    adapter = await adapter_for(backend)
    await backend.enqueue(ACME, message(idempotency_key="dogqueue.cron:s@by-hand"))
    schedule = Schedule("s", "* * * * *", Report(), tenant="acme")
    for _ in range(3):
        assert await enqueue_due(adapter, [schedule]) == []
        clock.advance(timedelta(minutes=1))
    assert set((await ticks_of(backend)).values()) == {1}
