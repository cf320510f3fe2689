"""evolve: fold one event into a job's state.

Pure and total over every event that `decide` produces from that state; an event that
does not apply (wrong job, version or token, or a transition the state forbids) raises
InvalidTransition, so a corrupt log is never silently folded.
"""

from __future__ import annotations

import msgspec

from dogqueue.core.errors import InvalidTransition
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
from dogqueue.core.retry import LEASE_EXPIRED_ERROR
from dogqueue.core.status import TERMINAL_STATUSES, JobStatus

_replace = msgspec.structs.replace
# Statuses bound once: an enum member read through its class costs a lookup each time,
# and evolve runs for every event every process folds.
_WAITING, _ENQUEUED, _LEASED = JobStatus.WAITING, JobStatus.ENQUEUED, JobStatus.LEASED
_COMPLETED, _FAILED, _CANCELED = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED
_COMPLETED_VALUE = JobStatus.COMPLETED.value


def evolve(state: JobInfo | None, event: AnyEvent) -> JobInfo:
    """Return the state after `event` (state None: the job does not exist yet)."""
    if isinstance(event, Enqueued):
        if state is not None:
            raise InvalidTransition(f"job {event.job_id!r} enqueued twice")
        if event.version != 1:
            raise InvalidTransition(
                f"enqueued event of {event.job_id!r} has version {event.version}"
            )
        run_at = event.message.run_at if event.message.run_at is not None else event.at
        if event.waiting_for and not set(event.waiting_for) <= set(event.message.after):
            raise InvalidTransition(f"enqueued event of {event.job_id!r} waits for a non-parent")
        return JobInfo(
            job_id=event.job_id,
            tenant_id=event.tenant_id,
            status=_WAITING if event.waiting_for else _ENQUEUED,
            message=event.message,
            attempts=0,
            result=None,
            last_error=None,
            created_at=event.at,
            run_at=run_at,
            lease_token=0,
            lease_expires_at=None,
            finished_at=None,
            updated_at=event.at,
            enqueue_seq=event.seq,
            version=1,
            waiting_for=event.waiting_for,
        )
    if state is None:
        raise InvalidTransition(f"{event.type} event for unknown job {event.job_id!r}")
    if event.job_id != state.job_id or event.tenant_id != state.tenant_id:
        raise InvalidTransition(f"{event.type} event of another job folded into {state.job_id!r}")
    if event.version != state.version + 1:
        raise InvalidTransition(
            f"{event.type} event of {state.job_id!r} has version {event.version},"
            f" expected {state.version + 1}"
        )
    match event:
        case Leased(token=token, attempt=attempt, expires_at=expires_at):
            _require(state, event, _ENQUEUED)
            if token <= state.lease_token or attempt != state.attempts + 1:
                raise InvalidTransition(f"leased event of {state.job_id!r} reuses a token")
            return _replace(
                state,
                status=_LEASED,
                attempts=attempt,
                lease_token=token,
                lease_expires_at=expires_at,
                updated_at=event.at,
                version=event.version,
            )
        case Heartbeat(token=token, expires_at=expires_at):
            _require_lease(state, event, token)
            return _replace(
                state, lease_expires_at=expires_at, updated_at=event.at, version=event.version
            )
        case Completed(token=token, result=result):
            _require_lease(state, event, token)
            return _replace(
                state,
                status=_COMPLETED,
                result=result,
                lease_expires_at=None,
                finished_at=event.at,
                updated_at=event.at,
                version=event.version,
            )
        case Failed(token=token, error=error):
            _require_lease(state, event, token)
            return _after_failure(state, event, error)
        case Expired(token=token):
            _require_lease(state, event, token)
            return _after_failure(state, event, LEASE_EXPIRED_ERROR)
        case Canceled():
            if state.status in TERMINAL_STATUSES:
                raise InvalidTransition(f"canceled event of {state.status} job {state.job_id!r}")
            return _replace(
                state,
                status=_CANCELED,
                waiting_for=(),
                lease_expires_at=None,
                finished_at=event.at,
                updated_at=event.at,
                version=event.version,
            )
        case Released(token=token):
            _require_lease(state, event, token)
            return _replace(
                state,
                status=_ENQUEUED,
                attempts=state.attempts - 1,
                lease_expires_at=None,
                updated_at=event.at,
                version=event.version,
            )
        case Requeued():
            if state.status not in (_FAILED, _CANCELED):
                raise InvalidTransition(f"requeued event of {state.status} job {state.job_id!r}")
            return _replace(
                state,
                status=_ENQUEUED,
                attempts=0,
                waiting_for=(),
                run_at=event.at,
                finished_at=None,
                updated_at=event.at,
                version=event.version,
            )
        case ParentFinished():
            return _after_parent(state, event)
    raise InvalidTransition(f"unknown event {event!r}")


def _after_parent(state: JobInfo, event: ParentFinished) -> JobInfo:
    """A WAITING job hears that one of its parents ended."""
    _require(state, event, _WAITING)
    if event.parent_id not in state.waiting_for:
        raise InvalidTransition(f"{state.job_id!r} is not waiting for {event.parent_id!r}")
    completed = event.parent_status == _COMPLETED_VALUE
    if not completed and state.message.on_parent_failure != "run":
        because = f": {event.reason}" if event.reason else ""
        return _replace(
            state,
            status=_CANCELED,
            waiting_for=(),
            last_error=f"parent {event.parent_id} {event.parent_status}{because}",
            finished_at=event.at,
            updated_at=event.at,
            version=event.version,
        )
    index = state.waiting_for.index(event.parent_id)  # slices: cheap for wide fan-ins
    left = state.waiting_for[:index] + state.waiting_for[index + 1 :]
    return _replace(
        state,
        status=_WAITING if left else _ENQUEUED,
        waiting_for=left,
        updated_at=event.at,
        version=event.version,
    )


def _require(state: JobInfo, event: AnyEvent, status: JobStatus) -> None:
    if state.status is not status:
        raise InvalidTransition(f"{event.type} event of {state.status} job {state.job_id!r}")


def _require_lease(state: JobInfo, event: AnyEvent, token: int) -> None:
    _require(state, event, _LEASED)
    if token != state.lease_token:
        raise InvalidTransition(f"{event.type} event of {state.job_id!r} with a stale token")


def failure_is_final(event: Failed | Expired) -> bool:
    """Whether a failed attempt leaves its job FAILED (no retry scheduled) rather than
    ENQUEUED again: the one rule the read side uses to count dead letters from events."""
    return event.retry_at is None


def _after_failure(state: JobInfo, event: Failed | Expired, error: str) -> JobInfo:
    if failure_is_final(event):
        return _replace(
            state,
            status=_FAILED,
            last_error=error,
            lease_expires_at=None,
            finished_at=event.at,
            updated_at=event.at,
            version=event.version,
        )
    return _replace(
        state,
        status=_ENQUEUED,
        last_error=error,
        run_at=event.retry_at,
        lease_expires_at=None,
        updated_at=event.at,
        version=event.version,
    )
