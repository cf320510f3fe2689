"""Run the jobs your code enqueued, in your own tests: a real Worker on a fake clock,
moved forward through retry delays and scheduled jobs until nothing is left to run."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dogqueue.client.adapter import QueueAdapter
from dogqueue.client.results import forget_waiter, settled_waiter
from dogqueue.clock import FakeClock
from dogqueue.core.errors import InvalidInput
from dogqueue.core.job import JobInfo
from dogqueue.core.status import JobStatus
from dogqueue.worker import Worker

#: The longest pause between two looks at the queue while jobs run (a wake-up arrives
#: sooner whenever a job finishes).
_RECHECK_SECONDS = 0.05


@dataclass(frozen=True)
class IdleReport:
    """Where `run_until_idle` stopped: every job's status and the clock's time."""

    jobs: dict[tuple[str, str], JobInfo]
    now: datetime

    @property
    def statuses(self) -> Counter[JobStatus]:
        """How many jobs are in each status."""
        return Counter(job.status for job in self.jobs.values())


async def run_until_idle(
    adapter: QueueAdapter[Any],
    *,
    context: Any = None,
    clock: FakeClock | None = None,
    queues: str | list[str] = "*",
    until: datetime | None = None,
    **worker_options: Any,
) -> IdleReport:
    """Run every job that is due with a Worker (context `context`, every queue by
    default); then, with a `clock`, move it to the next `run_at` (a retry or a scheduled
    job) and go on, until no job is due and none is scheduled (up to `until`, if given).

    `adapter.backend` must run on `clock`. `worker_options` go to the Worker."""
    backend = adapter.backend
    if clock is not None and not isinstance(clock, FakeClock):
        raise InvalidInput("clock", "must be a FakeClock (a real clock cannot be moved)")
    worker_options.setdefault("handle_signals", False)
    worker_options.setdefault("blocked_loop_warning", None)
    worker = Worker(adapter, context=context, queues=queues, **worker_options)
    async with worker:
        while True:
            await _settle(adapter, worker)
            if clock is None:
                break
            next_run = await _next_run_at(adapter, worker)
            if next_run is None or (until is not None and next_run > until):
                break
            clock.set(max(next_run, clock()))
            worker.wake()
    return IdleReport(jobs=await backend.projected_jobs(), now=backend.clock())


def _served(worker: Worker[Any], job: JobInfo) -> bool:
    """Whether the worker would run this job (its queue and tenant)."""
    if worker.tenants is not None and job.tenant_id not in {t.tenant_id for t in worker.tenants}:
        return False
    return worker.all_queues or job.message.queue in worker.queues


async def _next_run_at(adapter: QueueAdapter[Any], worker: Worker[Any]) -> datetime | None:
    jobs = await adapter.backend.projected_jobs()
    waiting = [
        j.run_at for j in jobs.values() if j.status is JobStatus.ENQUEUED and _served(worker, j)
    ]
    return min(waiting, default=None)


async def _settle(adapter: QueueAdapter[Any], worker: Worker[Any]) -> None:
    """Wait until no job is running or due now."""
    backend = adapter.backend
    while True:
        waiter = settled_waiter(backend)
        try:
            now = backend.clock()
            jobs = (await backend.projected_jobs()).values()
            busy = worker.running > 0 or any(
                job.status is JobStatus.LEASED
                or (job.status is JobStatus.ENQUEUED and job.run_at <= now and _served(worker, job))
                for job in jobs
            )
            if not busy:
                return
            worker.wake()
            await asyncio.wait({waiter}, timeout=_RECHECK_SECONDS)
        finally:
            forget_waiter(backend, waiter)
