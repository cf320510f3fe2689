"""What every part of the state machine shares: the tenants, queues and pools the rules
draw from, the bundles, the test config, and the malformed and closed-backend calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
from hypothesis import strategies as st
from hypothesis.stateful import Bundle

from dogqueue.backend.contract import Backend
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import ScheduleSpec
from dogqueue.core.errors import (
    BackendClosed,
    InvalidInput,
    JobAlreadyExists,
    JobCanceled,
    JobNotFound,
    LeaseLost,
    QueueError,
)
from dogqueue.core.job import Completion, LeasedJob
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobPriority

TENANTS = ("acme", "globex")
QUEUES = ("default", "mail")
QUEUE_CHOICES = (("default",), ("mail",), ("default", "mail"))
KEYS = ("k1", "k2", "k3")
#: A well-formed job id no backend will ever issue.
UNKNOWN_JOB_ID = "00000000-0000-7000-8000-000000000000"

#: Short leases and backoffs, so clock moves cross them often.
CONFIG = QueueConfig(
    default_lease_duration=timedelta(seconds=30),
    base_retry_backoff=timedelta(seconds=1),
    max_retry_backoff=timedelta(seconds=8),
)

REFUSALS: dict[str, type[QueueError]] = {
    "not_found": JobNotFound,
    "canceled": JobCanceled,
    "lease_lost": LeaseLost,
    "exists": JobAlreadyExists,
    "invalid": InvalidInput,
    "transition": QueueError,
    "closed": BackendClosed,
}
LEASE_OPERATIONS = ("heartbeat", "ack_complete", "ack_fail", "release")
#: A lease on a job no backend will ever issue, for calls that must fail before any lookup.
UNKNOWN_LEASE = LeasedJob(
    job_id=UNKNOWN_JOB_ID,
    tenant_id=TENANTS[0],
    message=JobMessage(job_type="props", payload_bytes=b"{}"),
    lease_token=1,
    lease_expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    attempt=1,
)

JOBS: Bundle[str] = Bundle("jobs")
LEASES: Bundle[LeasedJob] = Bundle("leases")

tenants = st.sampled_from(TENANTS)
queue_lists = st.sampled_from(QUEUE_CHOICES)
#: Seconds from now to run_at (None: now), sub-second ones among them.
run_in = st.sampled_from([None, -10, 0, 0.5, 5, 60.25])
priorities = st.sampled_from([int(p) for p in JobPriority])
idempotency_keys = st.none() | st.sampled_from(KEYS)
retry_limits = st.sampled_from([0, 1, 2])
#: Lease durations in seconds (None: the config's default), a sub-second one among them.
lease_seconds = st.sampled_from([None, 2, 10, 60, 0.75])
#: Job types and payloads that differ per job: non-UTF-8 bytes and an empty payload too.
JOB_TYPES = ("props", "mail.send", "report-é")
PAYLOADS = (b"{}", b'{"n": 1}', b"\xff\xfe\x00\x80raw", b"")
CODECS = ("json", "msgpack")


class MessageSpec(NamedTuple):
    """What a rule draws for one message (run_in: seconds from now, None: now)."""

    queue: str
    priority: int
    run_in: float | None
    key: str | None
    max_retries: int
    job_type: str = "props"
    payload: bytes = b"{}"
    codec: str = "json"


message_specs = st.builds(
    MessageSpec,
    st.sampled_from(QUEUES),
    priorities,
    run_in,
    idempotency_keys,
    retry_limits,
    st.sampled_from(JOB_TYPES),
    st.sampled_from(PAYLOADS),
    st.sampled_from(CODECS),
)

Call = Callable[[Backend], Coroutine[Any, Any, Any]]
VALID = JobMessage(job_type="props", payload_bytes=b"{}")
replace = msgspec.structs.replace

# -- schedules (cron) ----------------------------------------------------------------------
#: (name, cron, seconds between ticks, catch_up, zone): schedules whose ticks the model
#: finds by arithmetic (every one divides a day and the zones have fixed offsets), so it
#: shares nothing with the engine. Kolkata is UTC+05:30: its hourly ticks fall at half
#: past UTC hours, and its "30 * * * *" ones on UTC hours (so at the clock's start).
SCHEDULES = (
    ("minutely", "* * * * *", 60, 1, "UTC"),
    ("quarterly", "*/15 * * * *", 900, 3, "Asia/Kathmandu"),
    ("half-past", "30 * * * *", 3600, 2, "Asia/Kolkata"),
    ("hourly", "0 * * * *", 3600, 2, "Asia/Kolkata"),
)
Schedule = tuple[str, str, int, int, str]
schedules = st.sampled_from(SCHEDULES)
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def schedule_spec(schedule: Schedule, queue: str = "default") -> ScheduleSpec:
    """The ScheduleSpec of a drawn schedule, its jobs in `queue`."""
    name, cron, _, catch_up, zone = schedule
    message = JobMessage(job_type="tick", payload_bytes=b"\x00tick", queue=queue, max_retries=0)
    return ScheduleSpec(name=name, cron=cron, timezone=zone, catch_up=catch_up, message=message)


_CTX = QueueCtx(TENANTS[0])
#: A malformed call of each method that takes input (README, promise 8).
BAD_CALLS: dict[str, Call] = {
    "enqueue": lambda b: b.enqueue(QueueCtx(""), VALID),
    "enqueue_many": lambda b: b.enqueue_many(_CTX, [VALID, replace(VALID, queue="")]),
    "enqueue after_earlier": lambda b: b.enqueue(_CTX, replace(VALID, after_earlier=(0,))),
    "dequeue": lambda b: b.dequeue(_CTX, []),
    "dequeue_many": lambda b: b.dequeue_many(_CTX, list(QUEUES), 0),
    "heartbeat": lambda b: b.heartbeat(_CTX, "not a lease"),  # type: ignore[arg-type]
    "ack_complete": lambda b: b.ack_complete(_CTX, "not a lease"),  # type: ignore[arg-type]
    "ack_fail": lambda b: b.ack_fail(_CTX, "not a lease", "boom"),  # type: ignore[arg-type]
    "release": lambda b: b.release(_CTX, "not a lease"),  # type: ignore[arg-type]
    "settle_many": lambda b: b.settle_many(
        _CTX,
        [Completion(lease=UNKNOWN_LEASE), "not a settlement"],  # type: ignore[list-item]
    ),
    "cancel_job": lambda b: b.cancel_job(_CTX, 42),  # type: ignore[arg-type]
    "cancel_workflow": lambda b: b.cancel_workflow(_CTX, 42),  # type: ignore[arg-type]
    "retry_job": lambda b: b.retry_job(_CTX, 42),  # type: ignore[arg-type]
    "get_status": lambda b: b.get_status(_CTX, 42),  # type: ignore[arg-type]
    "get_job": lambda b: b.get_job(_CTX, 42),  # type: ignore[arg-type]
    "history": lambda b: b.history(_CTX, 42),  # type: ignore[arg-type]
    "ready_tenants": lambda b: b.ready_tenants("default"),
    "next_run_at": lambda b: b.next_run_at([]),
    "enqueue_ticks": lambda b: b.enqueue_ticks(
        _CTX, schedule_spec(("a@b", "* * * * *", 60, 1, "UTC")), T0
    ),
    "latest_tick": lambda b: b.latest_tick(_CTX, ""),
}
#: A well-formed call of each method, for a closed backend to refuse.
CLOSED_CALLS: dict[str, Call] = {
    "open": lambda b: b.open(),
    "enqueue": lambda b: b.enqueue(_CTX, VALID),
    "enqueue_many": lambda b: b.enqueue_many(_CTX, [VALID]),
    "dequeue": lambda b: b.dequeue(_CTX, list(QUEUES)),
    "dequeue_many": lambda b: b.dequeue_many(_CTX, list(QUEUES), 2),
    "heartbeat": lambda b: b.heartbeat(_CTX, UNKNOWN_LEASE),
    "ack_complete": lambda b: b.ack_complete(_CTX, UNKNOWN_LEASE),
    "ack_fail": lambda b: b.ack_fail(_CTX, UNKNOWN_LEASE, "boom"),
    "release": lambda b: b.release(_CTX, UNKNOWN_LEASE),
    "settle_many": lambda b: b.settle_many(_CTX, [Completion(lease=UNKNOWN_LEASE)]),
    "cancel_job": lambda b: b.cancel_job(_CTX, UNKNOWN_JOB_ID),
    "cancel_workflow": lambda b: b.cancel_workflow(_CTX, UNKNOWN_JOB_ID),
    "retry_job": lambda b: b.retry_job(_CTX, UNKNOWN_JOB_ID),
    "get_status": lambda b: b.get_status(_CTX, UNKNOWN_JOB_ID),
    "get_job": lambda b: b.get_job(_CTX, UNKNOWN_JOB_ID),
    "history": lambda b: b.history(_CTX, UNKNOWN_JOB_ID),
    "reap_expired": lambda b: b.reap_expired(),
    "ready_tenants": lambda b: b.ready_tenants(list(QUEUES)),
    "next_run_at": lambda b: b.next_run_at(list(QUEUES)),
    "read_events": lambda b: b.read_events(),
    "projected_jobs": lambda b: b.projected_jobs(),
    "rebuild_projections": lambda b: b.rebuild_projections(),
    "enqueue_ticks": lambda b: b.enqueue_ticks(_CTX, schedule_spec(SCHEDULES[0]), T0),
    "latest_tick": lambda b: b.latest_tick(_CTX, SCHEDULES[0][0]),
}


def lease_calls(ctx: QueueCtx, lease: LeasedJob) -> list[Call]:
    """Every lease method called with `ctx` and `lease`."""
    return [
        lambda b: b.heartbeat(ctx, lease),
        lambda b: b.ack_complete(ctx, lease, b"stolen"),
        lambda b: b.ack_fail(ctx, lease, "stolen", retry=False),
        lambda b: b.release(ctx, lease),
    ]


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on `loop`, finish its generators and executor, close it."""
    try:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
