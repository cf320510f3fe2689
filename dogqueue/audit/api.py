"""Auditing from Python, on any backend's log (`backend.log_reader()`, or
`dogqueue.backend.locate.open_log(db)`): time travel and explanations.

Everything here is tenant-scoped, so positions are the tenant's own: an `AsOf(seq=N)`
means the tenant's N-th event, as `Backend.history` numbers them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from dogqueue.audit.explain import Explanation, explain
from dogqueue.audit.timetravel import AsOf, events_as_of, jobs_as_of
from dogqueue.clock import utc_now
from dogqueue.core import validation as check
from dogqueue.core.errors import JobNotFound
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.order import is_ready, jobs_ahead, ready_since
from dogqueue.core.projection import JobKey, fold
from dogqueue.log.reader import LogReader


async def history_as_of(
    log: LogReader, ctx: QueueCtx, job_id: str, as_of: AsOf | None = None
) -> list[AnyEvent]:
    """The job's events that had happened at `as_of` (all of them by default), in
    tenant positions; empty if the job did not exist then."""
    tenant = check.check_ctx(ctx)
    return events_as_of(await log.history(tenant, job_id), as_of or AsOf())


async def job_as_of(log: LogReader, ctx: QueueCtx, job_id: str, as_of: AsOf) -> JobInfo:
    """The job's state at `as_of`, folded from its history; JobNotFound if it did not
    exist yet."""
    history = await history_as_of(log, ctx, job_id, as_of)
    if not history:
        raise JobNotFound(job_id)
    return fold(history)


async def tenant_as_of(log: LogReader, ctx: QueueCtx, as_of: AsOf) -> dict[JobKey, JobInfo]:
    """Every job of the tenant at `as_of`, folded from its events."""
    tenant = check.check_ctx(ctx)
    return jobs_as_of(await log.tenant_events(tenant), as_of)


async def jobs_at(log: LogReader, tenant_id: str | None, as_of: AsOf) -> list[JobInfo]:
    """The jobs (of one tenant, in its positions; else of every tenant, in log
    positions) at `as_of`, in enqueue order: the stored projection for now, the fold of
    the log for a past point."""
    if as_of.is_now:
        return await log.jobs(tenant_id)
    events = await (log.events() if tenant_id is None else log.tenant_events(tenant_id))
    return sorted(jobs_as_of(events, as_of).values(), key=lambda job: job.enqueue_seq)


async def explain_job(
    log: LogReader,
    ctx: QueueCtx,
    job_id: str,
    *,
    as_of: AsOf | None = None,
    now: datetime | None = None,
) -> Explanation:
    """Why the job is where it is (now, or at `as_of`), in plain words. `now` is the
    moment to explain at (default: the current time, or the `as_of` point)."""
    as_of = as_of or AsOf()
    history = await history_as_of(log, ctx, job_id, as_of)
    if not history:
        raise JobNotFound(job_id)
    job = fold(history)
    if now is None:
        now = utc_now() if as_of.is_now else as_of.at or history[-1].at
    others = await jobs_at(log, job.tenant_id, as_of)
    family = [
        other
        for other in others
        if other.job_id in job.message.after or job.job_id in other.message.after
    ]
    return explain(job, history, now, jobs_ahead(job, others, now), family)


def job_stats(jobs: list[JobInfo], now: datetime) -> dict[str, Any]:
    """Counts by status, queue and type, and the oldest ready job's age in seconds."""
    ready = [ready_since(job) for job in jobs if is_ready(job, now)]
    return {
        "jobs": len(jobs),
        "by_status": dict(sorted(Counter(job.status.value for job in jobs).items())),
        "by_queue": dict(sorted(Counter(job.message.queue for job in jobs).items())),
        "by_type": dict(sorted(Counter(job.message.job_type for job in jobs).items())),
        "oldest_ready_age_seconds": max(now - min(ready), timedelta(0)).total_seconds()
        if ready
        else None,
    }
