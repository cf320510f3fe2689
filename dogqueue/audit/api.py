"""Auditing from Python, on any backend: time travel and explanations.

(History is `Backend.history`; verification, replay and archival work on SQLite files,
see `dogqueue.audit.verify`, `.replay` and `.archive`.)
"""

from __future__ import annotations

from dogqueue.audit.explain import Explanation, explain, jobs_ahead
from dogqueue.audit.timetravel import AsOf, events_as_of, jobs_as_of
from dogqueue.backend.contract import Backend
from dogqueue.core import validation as check
from dogqueue.core.errors import JobNotFound
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.projection import JobKey, fold


async def job_as_of(backend: Backend, ctx: QueueCtx, job_id: str, as_of: AsOf) -> JobInfo:
    """The job's state at `as_of`, folded from its history; JobNotFound if it did not
    exist yet."""
    history = events_as_of(await backend.history(ctx, job_id), as_of)
    if not history:
        raise JobNotFound(job_id)
    return fold(history)


async def tenant_as_of(backend: Backend, ctx: QueueCtx, as_of: AsOf) -> dict[JobKey, JobInfo]:
    """Every job of the tenant at `as_of`, folded from the log."""
    tenant = check.check_ctx(ctx)
    events = await backend.read_events()
    return jobs_as_of((e for e in events if e.tenant_id == tenant), as_of)


async def explain_job(
    backend: Backend, ctx: QueueCtx, job_id: str, *, as_of: AsOf | None = None
) -> Explanation:
    """Why the job is where it is (now, or at `as_of`), in plain words."""
    as_of = as_of or AsOf()
    history = events_as_of(await backend.history(ctx, job_id), as_of)
    if not history:
        raise JobNotFound(job_id)
    job = fold(history)
    if as_of.is_now:
        now = backend.clock()
        others = list((await backend.projected_jobs()).values())
    else:
        now = as_of.at or history[-1].at
        others = list((await tenant_as_of(backend, ctx, as_of)).values())
    return explain(job, history, now, jobs_ahead(job, others, now))
