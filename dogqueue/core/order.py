"""The one definition of when an ENQUEUED job is ready and in which order ready jobs are
leased. Backends, explain, stats and metrics all use these (SQL orders by the same
columns, checked by the conformance suite)."""

from __future__ import annotations

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
