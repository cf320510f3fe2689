"""Pause and resume a tenant's queues and schedules, and run a schedule now, as events in
the log (`dogqueue.core.controls` holds the rules), on any backend.

A decision is one control event on the tenant's control stream, appended through the
backend's ordinary unit of work, so it is chained, stored and audited like a job's
events; the stream's `(tenant, stream, version)` is unique in storage as any job's is.
Workers read each tenant's stream (one indexed read, its history) about once a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol, TypeVar

import msgspec

from dogqueue.backend.contract import Backend
from dogqueue.core import validation as check
from dogqueue.core.controls import (
    ALL_TENANTS,
    AnyControlCommand,
    Controls,
    PauseQueue,
    PauseSchedule,
    ResumeQueue,
    ResumeSchedule,
    RunSchedule,
    decide_control,
    fold_controls,
    last_run_done,
    run_now_key,
    run_now_prefix,
)
from dogqueue.core.cron import check_schedule_name
from dogqueue.core.errors import InvalidInput, JobNotFound
from dogqueue.core.events import CONTROL_STREAM, AnyControlEvent
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.validation import PreparedEnqueue
from dogqueue.engine import Engine, Reads, Transaction, Unit

T = TypeVar("T")

#: The context of the decisions for every tenant at once (an administrator's).
ALL_TENANTS_CTX = QueueCtx(ALL_TENANTS)

__all__ = [
    "ALL_TENANTS_CTX",
    "Controls",
    "pause_queue",
    "pause_schedule",
    "read_controls",
    "read_many_controls",
    "resume_queue",
    "resume_schedule",
    "run_schedule_now",
]


class UnitRunner(Protocol):
    """A backend that runs the engine's units of work (every built-in one does)."""

    async def run_unit(self, unit: Unit[T]) -> T: ...

    def notify_change(self) -> None: ...


def _engine(backend: object) -> UnitRunner:
    if not (callable(getattr(backend, "run_unit", None)) and hasattr(backend, "notify_change")):
        raise InvalidInput("backend", "must run units of work (run_unit), as dogqueue's do")
    return backend  # type: ignore[return-value]  # checked just above


def _actor(actor: object) -> str | None:
    return None if actor is None else check.check_name("actor", actor)


async def read_controls(backend: Backend, ctx: QueueCtx) -> Controls:
    """What the tenant's control stream says now: paused queues and schedules, run-now
    requests. `ALL_TENANTS_CTX` reads the decisions for every tenant."""
    tenant = check.check_ctx(ctx)
    try:
        events = await backend.history(QueueCtx(tenant), CONTROL_STREAM)
    except JobNotFound:
        return Controls()
    return fold_controls(events)


async def read_many_controls(
    backend: Backend, tenants: Iterable[str]
) -> tuple[Controls, dict[str, Controls]]:
    """The decisions for every tenant, and each of `tenants`' own: one read per stream,
    made together."""
    served = list(dict.fromkeys(tenants))
    streams = [ALL_TENANTS_CTX, *(QueueCtx(tenant) for tenant in served)]
    states = await asyncio.gather(*(read_controls(backend, ctx) for ctx in streams))
    return states[0], dict(zip(served, states[1:], strict=True))


async def _control(
    storage: Backend, tenant: str, command: Callable[[datetime], AnyControlCommand]
) -> bool:
    """Decide `command` (made at the transaction's time) on the stream as read now and
    append its event; return whether it changed anything."""
    backend = _engine(storage)
    state = await read_controls(storage, QueueCtx(tenant))

    def run(tx: Transaction, now: datetime) -> AnyControlEvent | None:
        event = decide_control(state, command(now))
        if event is not None:
            tx.append(event)
        return event

    event = await backend.run_unit(Unit(Reads(tenant=tenant), run))
    if event is not None:
        backend.notify_change()  # a resumed queue may have jobs ready
    return event is not None


async def _on_queue(
    backend: Backend,
    ctx: QueueCtx,
    queue: str,
    actor: str | None,
    kind: type[PauseQueue] | type[ResumeQueue],
) -> bool:
    tenant, name, who = check.check_ctx(ctx), check.check_name("queue", queue), _actor(actor)
    return await _control(
        backend, tenant, lambda at: kind(tenant_id=tenant, at=at, actor=who, queue=name)
    )


async def _on_schedule(
    backend: Backend,
    ctx: QueueCtx,
    schedule: str,
    actor: str | None,
    kind: type[PauseSchedule] | type[ResumeSchedule] | type[RunSchedule],
) -> bool:
    tenant, name, who = check.check_ctx(ctx), check_schedule_name(schedule), _actor(actor)
    return await _control(
        backend, tenant, lambda at: kind(tenant_id=tenant, at=at, actor=who, schedule=name)
    )


async def pause_queue(
    backend: Backend, ctx: QueueCtx, queue: str, *, actor: str | None = None
) -> bool:
    """Stop every worker leasing the tenant's jobs in `queue` (within 2 s; running jobs
    finish); `ALL_TENANTS_CTX` pauses it for every tenant. Return False if it was
    paused already (nothing is appended then)."""
    return await _on_queue(backend, ctx, queue, actor, PauseQueue)


async def resume_queue(
    backend: Backend, ctx: QueueCtx, queue: str, *, actor: str | None = None
) -> bool:
    """Let workers lease from the paused `queue` again (within 2 s). Return False if it
    was not paused (nothing is appended then)."""
    return await _on_queue(backend, ctx, queue, actor, ResumeQueue)


async def pause_schedule(
    backend: Backend, ctx: QueueCtx, schedule: str, *, actor: str | None = None
) -> bool:
    """Stop workers enqueueing the tenant's schedule's ticks. Return False if it was
    paused already."""
    return await _on_schedule(backend, ctx, schedule, actor, PauseSchedule)


async def resume_schedule(
    backend: Backend, ctx: QueueCtx, schedule: str, *, actor: str | None = None
) -> bool:
    """Let workers enqueue the schedule's ticks again (missed ticks follow its catch-up
    policy). Return False if it was not paused."""
    return await _on_schedule(backend, ctx, schedule, actor, ResumeSchedule)


async def run_schedule_now(
    backend: Backend, ctx: QueueCtx, schedule: str, *, actor: str | None = None
) -> bool:
    """Ask for one run of the schedule's job now: the next worker serving the schedule
    enqueues it, exactly once per request (even while the schedule is paused)."""
    return await _on_schedule(backend, ctx, schedule, actor, RunSchedule)


def run_now_unit(
    engine: Engine, tenant: str, schedule: str, message: JobMessage, versions: list[int]
) -> Unit[list[str]]:
    """A unit that enqueues `message` (the schedule's job) once for each run-now request
    of `versions` that has no job yet (read in the same transaction); its result is the
    new jobs' ids. Each job's idempotency key names its request, so the storage's unique
    key settles a race between workers."""
    prefix = run_now_prefix(schedule)
    jobs = {
        version: msgspec.structs.replace(
            message, idempotency_key=run_now_key(schedule, version), run_at=None
        )
        for version in versions
    }
    every = engine.enqueue_unit(PreparedEnqueue(tenant, tuple(jobs.values())))

    def run(tx: Transaction, now: datetime) -> list[str]:
        latest = tx.latest_key(tenant, prefix)
        done = last_run_done(schedule, None if latest is None else latest[0])
        pending = tuple(job for version, job in jobs.items() if version > done)
        if not pending:
            return []
        return engine.enqueue_unit(PreparedEnqueue(tenant, pending)).run(tx, now)

    return Unit(every.reads | Reads(key_prefixes=((tenant, prefix),)), run)
