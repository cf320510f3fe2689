"""Projections: job states folded from the log."""

from __future__ import annotations

from collections.abc import Iterable

from dogqueue.core.errors import InvalidInput
from dogqueue.core.events import AnyEvent, is_control
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo

#: A job's identity across tenants.
JobKey = tuple[str, str]


def fold(history: Iterable[AnyEvent]) -> JobInfo:
    """The state one job's events describe, in log order (as `history` returns them)."""
    state: JobInfo | None = None
    for event in history:
        state = evolve(state, event)
    if state is None:
        raise InvalidInput("history", "is empty: a job's history starts with its enqueued event")
    return state


def rebuild(events: Iterable[AnyEvent]) -> dict[JobKey, JobInfo]:
    """Every job's state, keyed by (tenant_id, job_id), from the whole log in order
    (control events, which are about no job, are skipped)."""
    jobs: dict[JobKey, JobInfo] = {}
    for event in events:
        if is_control(event):
            continue
        key = (event.tenant_id, event.job_id)
        jobs[key] = evolve(jobs.get(key), event)
    return jobs
