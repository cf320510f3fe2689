"""Requests to change one job. Each carries its time (and random draws) as data, so
deciding it is a pure function."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from dogqueue.core.message import JobMessage


class Command(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Fields every command carries: whose job, and when."""

    # gc=False (for the subclasses too): a command holds no container that could close a
    # cycle, so the cycle collector need not count or traverse one per call.

    tenant_id: str
    job_id: str
    at: datetime


class Enqueue(Command, frozen=True):
    """Create the job from a validated message."""

    message: JobMessage
    trace_context: dict[str, str] | None = None
    #: Parents of `message.after` that have not completed yet.
    waiting_for: tuple[str, ...] = ()


class Lease(Command, frozen=True):
    """Take the job for `duration`."""

    duration: timedelta


class ExtendLease(Command, frozen=True):
    """Heartbeat: keep the lease `token` for `duration` from now."""

    token: int
    duration: timedelta
    progress: float | None = None
    progress_message: str | None = None


class Complete(Command, frozen=True):
    """Acknowledge success under lease `token`."""

    token: int
    result: bytes | None = None


class Fail(Command, frozen=True):
    """Acknowledge failure under lease `token`; `draw` in [0, 1] picks the jitter."""

    token: int
    error: str
    retry: bool = True
    draw: float = 1.0


class Cancel(Command, frozen=True):
    """Cancel the job unless it is already terminal; `actor` names who asked, if known."""

    actor: str | None = None


class Expire(Command, frozen=True):
    """Reclaim a lease whose time has come; `draw` picks the retry jitter."""

    draw: float = 1.0


class Release(Command, frozen=True):
    """Give back lease `token` without counting the attempt; `reason` and `until` say
    why, for the record (a deploy hold: no code here runs it, until when it is held)."""

    token: int
    reason: str | None = None
    until: datetime | None = None


class Requeue(Command, frozen=True):
    """Put a FAILED job (or a CANCELED one, if `include_canceled`) back to ENQUEUED."""

    include_canceled: bool = False
    actor: str | None = None


class SettleParent(Command, frozen=True):
    """Tell a WAITING job that its parent `parent_id` ended with `parent_status`."""

    parent_id: str
    parent_status: str
    reason: str | None = None


AnyCommand = (
    Enqueue
    | Lease
    | ExtendLease
    | Complete
    | Fail
    | Cancel
    | Expire
    | Release
    | Requeue
    | SettleParent
)
