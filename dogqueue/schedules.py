"""Periodic jobs: `Schedule` (a job on a cron expression, in a time zone) and
`enqueue_due`, which enqueues every tick that has come exactly once, however many
processes or hosts call it at once.

Exactly once comes from the log, not from a leader or a lock: each tick's job carries
an idempotency key naming the schedule and the tick, which storage keeps unique per
tenant, and a schedule's newest enqueued tick is the greatest of its keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from dogqueue.backend.contract import Backend
from dogqueue.client.adapter import QueueAdapter
from dogqueue.controls import read_many_controls, run_now_unit
from dogqueue.core import cron as rules
from dogqueue.core import validation as check
from dogqueue.core.controls import requested_runs
from dogqueue.core.cron import ScheduleSpec
from dogqueue.core.errors import InvalidInput
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobPriority
from dogqueue.engine import Engine
from dogqueue.jobs import BaseJob


class Schedule:
    """A job enqueued at every tick of a cron expression, for one tenant.

    `cron` is a standard five-field expression (minute hour day-of-month month
    day-of-week, e.g. "30 2 * * *") or an alias: @hourly, @daily (@midnight), @weekly,
    @monthly, @yearly (@annually). It is read in `timezone` (an IANA name, or a
    ZoneInfo), daylight-saving changes included: a job at a fixed local time runs once
    on the day the clocks skip that time (just after the jump) and once on the day they
    repeat it. `job` is a registered job object, enqueued as is at each tick (with its
    class's priority and retries unless `priority` or `max_retries` say otherwise) in
    `queue`, with `run_at` the tick.

    Missed ticks (nobody called `enqueue_due` for a while): at most the newest
    `catch_up` of them are enqueued, so 1 (the default) runs only the latest. A schedule
    with no tick in the log yet starts with its latest tick only if that came within
    the last minute, otherwise with its next one.

    Bad input raises InvalidInput naming the field (name, cron, timezone, catch_up, job,
    tenant); cron needs the `cron` extra (`pip install 'dogqueue[cron]'`).
    """

    def __init__(
        self,
        name: str,
        cron: str,
        job: BaseJob[Any, Any],
        *,
        tenant: str | QueueCtx,
        queue: str | None = None,
        timezone: str | ZoneInfo = "UTC",
        catch_up: int = 1,
        priority: JobPriority | None = None,
        max_retries: int | None = None,
    ) -> None:
        self.name = rules.check_schedule_name(name)
        self.cron = rules.parse_cron(cron)
        self.zone = rules.parse_timezone(timezone)
        self.timezone: str = self.zone.key
        self.catch_up = rules.check_catch_up(catch_up)
        if not isinstance(job, BaseJob) or not isinstance(
            getattr(type(job), "JOB_TYPE", None), str
        ):
            raise InvalidInput("job", "must be an instance of a Job subclass with a JOB_TYPE")
        self.job = job
        tenant_id = tenant.tenant_id if isinstance(tenant, QueueCtx) else tenant
        self.tenant = check.check_name("tenant", tenant_id)
        self.queue = None if queue is None else check.check_name("queue", queue)
        self.priority = None if priority is None else check.check_priority(priority)
        self.max_retries = None if max_retries is None else check.check_max_retries(max_retries)

    @property
    def ctx(self) -> QueueCtx:
        """The tenant the schedule's jobs belong to."""
        return QueueCtx(self.tenant)

    def spec(self, adapter: QueueAdapter[Any]) -> ScheduleSpec:
        """The schedule as storage sees it (the job encoded by `adapter`)."""
        message = adapter.message_for(
            self.job, queue=self.queue, priority=self.priority, max_retries=self.max_retries
        )
        return ScheduleSpec(
            name=self.name,
            cron=self.cron,
            timezone=self.timezone,
            catch_up=self.catch_up,
            message=message,
        )

    def next_tick(self, after: datetime) -> datetime | None:
        """The schedule's first tick after `after`, in UTC (None: it never fires again)."""
        return rules.next_tick(self.cron, self.zone, check.check_aware("after", after))

    def describe(self) -> str:
        """The expression in words, e.g. "At 02:30"."""
        return rules.describe(self.cron)

    def __repr__(self) -> str:
        return (
            f"Schedule({self.name!r}, {self.cron!r}, {type(self.job).__name__},"
            f" tenant={self.tenant!r}, timezone={self.timezone!r}, catch_up={self.catch_up})"
        )


class ScheduleState(msgspec.Struct, frozen=True, kw_only=True):
    """What the log says about one schedule at a moment: its newest enqueued tick and
    that tick's job (None: none yet), and its next tick after the moment."""

    name: str
    tenant: str
    cron: str
    timezone: str
    last_tick: datetime | None
    last_job_id: str | None
    next_tick: datetime | None


def check_schedules(schedules: object) -> list[Schedule]:
    """`schedules` as a list, if it is a sequence of Schedule with no (tenant, name)
    twice."""
    if isinstance(schedules, (str, bytes, Schedule)) or not isinstance(schedules, Sequence):
        raise InvalidInput("schedules", "must be a list of Schedule")
    seen: set[tuple[str, str]] = set()
    for schedule in schedules:
        if not isinstance(schedule, Schedule):
            raise InvalidInput("schedules", f"must hold Schedule, not {type(schedule).__name__}")
        identity = (schedule.tenant, schedule.name)
        if identity in seen:
            raise InvalidInput("schedules", f"schedule {schedule.name!r} appears twice")
        seen.add(identity)
    return list(schedules)


def _now(adapter: QueueAdapter[Any], now: datetime | None) -> datetime:
    moment = adapter.backend.clock() if now is None else now
    return check.check_aware("now", moment).astimezone(UTC)


async def paused_schedules(backend: Backend, schedules: Sequence[Schedule]) -> set[tuple[str, str]]:
    """The (tenant, name) of each of `schedules` that an operator paused (for its
    tenant, or for every tenant): one read of each control stream."""
    everywhere, by_tenant = await read_many_controls(backend, (s.tenant for s in schedules))
    return {
        (s.tenant, s.name)
        for s in schedules
        if s.name in everywhere.paused_schedules or s.name in by_tenant[s.tenant].paused_schedules
    }


async def enqueue_requested_runs(
    adapter: QueueAdapter[Any],
    schedules: Sequence[Schedule],
    seen: dict[tuple[str, str], int] | None = None,
) -> list[str]:
    """Enqueue the job of each of `schedules` once for every run-now request (see
    `dogqueue.controls.run_schedule_now`) that has no job yet, paused or not; return the
    new jobs' ids. Exactly one job per request, however many processes call this.
    `seen`, kept by a caller between calls, holds the newest request per (tenant, name)
    already carried out, so that a call with no new request writes nothing."""
    backend, engine = adapter.backend, getattr(adapter.backend, "engine", None)
    if not isinstance(engine, Engine):
        return []  # requested runs are enqueued through the engine's units of work
    checked = check_schedules(schedules)
    seen = {} if seen is None else seen
    _, controls = await read_many_controls(backend, (s.tenant for s in checked))
    ids: list[str] = []
    for schedule in checked:
        identity = (schedule.tenant, schedule.name)
        versions = requested_runs(controls[schedule.tenant], schedule.name, seen.get(identity, 0))
        if not versions:
            continue
        message = schedule.spec(adapter).message
        unit = run_now_unit(engine, schedule.tenant, schedule.name, message, versions)
        new_ids: list[str] = await backend.run_unit(unit)  # type: ignore[attr-defined]
        ids.extend(new_ids)
        seen[identity] = versions[-1]
    if ids:
        backend.notify_change()  # type: ignore[attr-defined]
    return ids


async def enqueue_due(
    adapter: QueueAdapter[Any], schedules: Sequence[Schedule], now: datetime | None = None
) -> list[str]:
    """Enqueue every tick of `schedules` that has come by `now` (default: the backend's
    clock) and has no job in the log yet, under each schedule's catch-up policy; return
    the new jobs' ids. A schedule an operator paused is skipped (its missed ticks follow
    its catch-up policy once it is resumed). Exactly one job per (schedule, tick),
    however many processes or hosts call this at once. Every schedule is checked
    before anything is enqueued; each schedule's ticks are enqueued all or none."""
    if not isinstance(adapter, QueueAdapter):
        raise InvalidInput("adapter", "must be a QueueAdapter")
    checked = check_schedules(schedules)
    moment = _now(adapter, now)
    specs = [schedule.spec(adapter) for schedule in checked]
    backend = adapter.backend
    paused = await paused_schedules(backend, checked)
    kept = [i for i, s in enumerate(checked) if (s.tenant, s.name) not in paused]
    checked, specs = [checked[i] for i in kept], [specs[i] for i in kept]
    outcomes = await asyncio.gather(
        *(
            backend.enqueue_ticks(schedule.ctx, spec, moment)
            for schedule, spec in zip(checked, specs, strict=True)
        ),
        return_exceptions=True,
    )
    ids: list[str] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        ids.extend(outcome)
    return ids


async def schedule_states(
    adapter: QueueAdapter[Any], schedules: Sequence[Schedule], now: datetime | None = None
) -> list[ScheduleState]:
    """Each schedule's newest enqueued tick (from the log) and next tick after `now`."""
    checked = check_schedules(schedules)
    moment = _now(adapter, now)
    latest = await asyncio.gather(*(adapter.backend.latest_tick(s.ctx, s.name) for s in checked))
    return [
        ScheduleState(
            name=schedule.name,
            tenant=schedule.tenant,
            cron=schedule.cron,
            timezone=schedule.timezone,
            last_tick=None if last is None else last[0],
            last_job_id=None if last is None else last[1],
            next_tick=schedule.next_tick(moment),
        )
        for schedule, last in zip(checked, latest, strict=True)
    ]
