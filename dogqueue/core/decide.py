"""decide: which events a command produces, given the job's current state.

Pure: no I/O, no clock, no randomness. Raising means the command is refused and
nothing may be appended.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from dogqueue.core.commands import (
    AnyCommand,
    Cancel,
    Complete,
    Enqueue,
    Expire,
    ExtendLease,
    Fail,
    Lease,
    Release,
    Requeue,
    SettleParent,
)
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import InvalidTransition, JobCanceled, JobNotFound, LeaseLost
from dogqueue.core.events import (
    AnyEvent,
    Canceled,
    Completed,
    Enqueued,
    Expired,
    Failed,
    Heartbeat,
    Leased,
    ParentFinished,
    Released,
    Requeued,
)
from dogqueue.core.job import JobInfo
from dogqueue.core.retry import retry_delay
from dogqueue.core.status import JobStatus


def decide(state: JobInfo | None, command: AnyCommand, config: QueueConfig) -> list[AnyEvent]:
    """Return the events `command` produces from `state` (None: the job does not exist)."""
    if isinstance(command, Enqueue):
        if state is not None:
            raise InvalidTransition(f"job {command.job_id!r} already exists")
        message = command.message
        run_at = command.at if message.run_at is None else message.run_at.astimezone(UTC)
        resolved = msgspec.structs.replace(message, run_at=run_at)
        return [
            Enqueued(
                tenant_id=command.tenant_id,
                job_id=command.job_id,
                version=1,
                at=command.at,
                message=resolved,
                trace_context=command.trace_context,
                waiting_for=command.waiting_for,
            )
        ]
    if state is None:
        raise JobNotFound(command.job_id)
    # The fields every event of an existing job starts with, passed one by one below
    # (a ** of a dict of them costs more than the rest of the event).
    tenant_id, job_id, version, at = state.tenant_id, state.job_id, state.version + 1, command.at
    match command:
        case Lease(duration=duration):
            if state.status is not JobStatus.ENQUEUED:
                raise InvalidTransition(f"job {state.job_id!r} is {state.status}, not enqueued")
            if state.run_at > command.at:
                raise InvalidTransition(f"job {state.job_id!r} is not due yet")
            return [
                Leased(
                    tenant_id=tenant_id,
                    job_id=job_id,
                    version=version,
                    at=at,
                    token=state.lease_token + 1,
                    attempt=state.attempts + 1,
                    expires_at=at + duration,
                )
            ]
        case ExtendLease(token=token, duration=duration):
            _check_lease(state, token, command)
            return [
                Heartbeat(
                    tenant_id=tenant_id,
                    job_id=job_id,
                    version=version,
                    at=at,
                    token=token,
                    expires_at=at + duration,
                    progress=command.progress,
                    progress_message=command.progress_message,
                )
            ]
        case Complete(token=token, result=result):
            _check_lease(state, token, command)
            return [
                Completed(
                    tenant_id=tenant_id,
                    job_id=job_id,
                    version=version,
                    at=at,
                    token=token,
                    result=result,
                )
            ]
        case Fail(token=token, error=error, retry=retry, draw=draw):
            _check_lease(state, token, command)
            retry_at = _retry_at(state, command, draw, config) if retry else None
            return [
                Failed(
                    tenant_id=tenant_id,
                    job_id=job_id,
                    version=version,
                    at=at,
                    token=token,
                    error=error,
                    retry_at=retry_at,
                )
            ]
        case Cancel(actor=actor):
            if state.status.is_terminal:
                return []
            return [
                Canceled(tenant_id=tenant_id, job_id=job_id, version=version, at=at, actor=actor)
            ]
        case Expire(draw=draw):
            if state.status is not JobStatus.LEASED:
                raise InvalidTransition(f"job {state.job_id!r} is {state.status}, not leased")
            assert state.lease_expires_at is not None
            if command.at < state.lease_expires_at:
                raise InvalidTransition(f"lease of job {state.job_id!r} has not expired")
            return [
                Expired(
                    tenant_id=tenant_id,
                    job_id=job_id,
                    version=version,
                    at=at,
                    token=state.lease_token,
                    retry_at=_retry_at(state, command, draw, config),
                )
            ]
        case Release(token=token, reason=reason, until=until):
            _check_lease(state, token, command)
            return [
                Released(
                    tenant_id=tenant_id,
                    job_id=job_id,
                    version=version,
                    at=at,
                    token=token,
                    reason=reason,
                    until=until,
                )
            ]
        case Requeue(include_canceled=include_canceled, actor=actor):
            allowed = (
                {JobStatus.FAILED, JobStatus.CANCELED} if include_canceled else {JobStatus.FAILED}
            )
            if state.status not in allowed:
                raise InvalidTransition(
                    f"job {state.job_id!r} is {state.status}; only "
                    + " or ".join(sorted(s.value for s in allowed))
                    + " jobs can be requeued"
                )
            return [
                Requeued(tenant_id=tenant_id, job_id=job_id, version=version, at=at, actor=actor)
            ]
        case SettleParent(parent_id=parent_id, parent_status=parent_status, reason=reason):
            if state.status is not JobStatus.WAITING or parent_id not in state.waiting_for:
                return []  # already settled (or no longer waiting): nothing to record
            if parent_status not in _PARENT_ENDINGS:
                raise InvalidTransition(f"parent {parent_id!r} has not ended ({parent_status})")
            return [
                ParentFinished(
                    tenant_id=tenant_id,
                    job_id=job_id,
                    version=version,
                    at=at,
                    parent_id=parent_id,
                    parent_status=parent_status,
                    reason=reason,
                )
            ]
    raise InvalidTransition(f"unknown command {command!r}")


_PARENT_ENDINGS = frozenset(
    {JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELED.value}
)


def _check_lease(state: JobInfo, token: int, command: AnyCommand) -> None:
    """Fencing: the token must be the job's current one and its lease still valid.
    A canceled job reports JobCanceled whatever the token."""
    if state.status is JobStatus.CANCELED:
        raise JobCanceled(state.job_id)
    if state.status is not JobStatus.LEASED or token != state.lease_token:
        raise LeaseLost(state.job_id, f"token {token} is not the current lease")
    assert state.lease_expires_at is not None
    if command.at >= state.lease_expires_at:
        raise LeaseLost(state.job_id, "lease expired")


def _retry_at(
    state: JobInfo, command: AnyCommand, draw: float, config: QueueConfig
) -> datetime | None:
    """When the failed attempt runs again, or None when no retries are left."""
    attempt = state.attempts
    if attempt > state.message.max_retries:
        return None
    delay = retry_delay(attempt, config.base_retry_backoff, config.max_retry_backoff, draw)
    return command.at + delay
