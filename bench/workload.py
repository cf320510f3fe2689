"""Shared inputs for the benchmarks: a message, a tenant, a log built through the core."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from dogqueue import AnyEvent, JobMessage, QueueConfig, QueueCtx
from dogqueue.core.commands import AnyCommand, Complete, Enqueue, Lease
from dogqueue.core.decide import decide
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo

CTX = QueueCtx("tenant-1")
MESSAGE = JobMessage(job_type="send_email", payload_bytes=b'{"user_id": 12345}')
START = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(minutes=5)
CONFIG = QueueConfig()


def apply(state: JobInfo | None, command: AnyCommand, seq: int) -> tuple[JobInfo, list[AnyEvent]]:
    """Decide `command` and fold its events, numbering them from log position `seq`."""
    events: list[AnyEvent] = [
        msgspec.structs.replace(event, seq=seq + offset)
        for offset, event in enumerate(decide(state, command, CONFIG))
    ]
    for event in events:
        state = evolve(state, event)
    assert state is not None
    return state, events


def lifecycle_events(job_id: str, first_seq: int) -> list[AnyEvent]:
    """One job's events: enqueued, leased, completed."""
    tenant, at = CTX.tenant_id, START
    enqueue = Enqueue(tenant_id=tenant, job_id=job_id, at=at, message=MESSAGE)
    state, enqueued = apply(None, enqueue, first_seq)
    lease = Lease(tenant_id=tenant, job_id=job_id, at=at, duration=LEASE)
    state, leased = apply(state, lease, first_seq + 1)
    complete = Complete(tenant_id=tenant, job_id=job_id, at=at, token=state.lease_token)
    _, completed = apply(state, complete, first_seq + 2)
    return enqueued + leased + completed


def log_of(jobs: int) -> list[AnyEvent]:
    """A log of `jobs` finished jobs, three events each, in log order."""
    events: list[AnyEvent] = []
    for index in range(jobs):
        events += lifecycle_events(f"job-{index:09d}", len(events) + 1)
    return events
