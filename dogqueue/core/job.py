"""A job's current state (what folding its events gives) and a held lease."""

from __future__ import annotations

from datetime import datetime

import msgspec

from dogqueue.core.message import JobMessage
from dogqueue.core.status import JobStatus


class JobInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """The state of one job, folded from its events. Equal folds give equal JobInfos."""

    job_id: str
    tenant_id: str
    status: JobStatus
    #: The message as enqueued; `message.run_at` is the first schedule.
    message: JobMessage
    #: Leases taken so far (released leases do not count; a requeue resets it).
    attempts: int
    #: The encoded result of a completed job.
    result: bytes | None
    #: The error of the latest failed attempt.
    last_error: str | None
    created_at: datetime
    #: When the job may next be leased, after any retry delay (UTC).
    run_at: datetime
    #: The latest fencing token issued (0 before the first lease).
    lease_token: int
    #: When the current lease ends; None unless LEASED.
    lease_expires_at: datetime | None
    #: When the job became terminal; None otherwise.
    finished_at: datetime | None
    updated_at: datetime
    #: Position of the `enqueued` event (the FIFO tie-breaker): a log position from the
    #: global reads (`projected_jobs`, `LogReader.jobs()`); the tenant reads (`get_job`,
    #: `LogReader.jobs(tenant_id)`) rewrite it to the tenant position
    #: (`dogqueue.log.reader.in_tenant_positions`). Compare only jobs read the same way.
    enqueue_seq: int
    #: Number of events in the job's history.
    version: int
    #: The parents (`message.after`) this job still waits for, in `after` order; empty
    #: unless WAITING.
    waiting_for: tuple[str, ...] = ()


class LeasedJob(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A job held by a worker. `lease_token` fences every acknowledgement and heartbeat."""

    # gc=False here and in Completion and Failure: they hold no container that could
    # close a cycle, and a worker keeps hundreds alive for the cycle collector to walk.

    job_id: str
    tenant_id: str
    message: JobMessage
    lease_token: int
    lease_expires_at: datetime
    #: 1 for the first lease of the job.
    attempt: int


class Completion(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A leased job that succeeded, for `Backend.settle_many`."""

    lease: LeasedJob
    #: The encoded result, as `ack_complete` takes it.
    result: bytes | None = None


class Failure(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A leased job's failed attempt, for `Backend.settle_many` (as `ack_fail` takes it)."""

    lease: LeasedJob
    error: str
    #: Schedule a retry if the job has attempts left.
    retry: bool = True


#: One leased job's outcome, settled with others in one unit of work.
Settlement = Completion | Failure
