"""The one definition of when an ENQUEUED job is ready and in which order ready jobs are
leased. Backends, explain, stats and metrics all use these (SQL orders by the same
columns, checked by the conformance suite)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from dogqueue.core.job import JobInfo
from dogqueue.core.status import JobStatus

#: The dequeue key: higher priority first, then earlier run_at, then enqueued earlier.
DequeueKey = tuple[int, datetime, int]


def dequeue_key(job: JobInfo) -> DequeueKey:
    """The key ready jobs of one tenant and queue are leased by, smallest first."""
    return (-int(job.message.priority), job.run_at, job.enqueue_seq)


def is_ready(job: JobInfo, now: datetime) -> bool:
    """True when `job` may be leased at `now`: ENQUEUED and due."""
    return job.status is JobStatus.ENQUEUED and job.run_at <= now


def ready_since(job: JobInfo) -> datetime:
    """Since when an ENQUEUED job has been waiting to be leased: its run_at, or the moment
    it (re)entered the queue if that came later (a release, a late enqueue). An ENQUEUED
    job's `updated_at` is that moment: nothing else updates a job while it waits."""
    return max(job.run_at, job.updated_at)


def jobs_ahead(job: JobInfo, others: Iterable[JobInfo], now: datetime) -> int:
    """How many ready jobs of the same tenant and queue would be leased before `job`.
    `others` and `job` must carry positions of one kind (all log or all tenant
    positions): the dequeue key breaks ties by enqueue position."""
    mine = dequeue_key(job)
    return sum(
        1
        for other in others
        if is_ready(other, now)
        and other.tenant_id == job.tenant_id
        and other.message.queue == job.message.queue
        and other.job_id != job.job_id
        and dequeue_key(other) < mine
    )


def earliest_ready_since(
    ready_by_run_at: Iterable[JobInfo], best: datetime | None = None
) -> datetime | None:
    """The earliest `ready_since` among ready jobs given in `run_at` order and `best`
    (one found before them), or None if there is none. Reads only as far as it must:
    `ready_since` is never before `run_at`, so no job from one whose `run_at` reaches
    the best found so far on can beat it."""
    for job in ready_by_run_at:
        if best is not None and job.run_at >= best:
            break
        since = ready_since(job)
        best = since if best is None else min(best, since)
    return best
