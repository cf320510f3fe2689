"""Operator controls of a tenant's queues and schedules: pause, resume, run now.

Each decision is a control event (`dogqueue.core.events.ControlEvent`) on the tenant's
control stream, folded here into `Controls`. Deciding is pure: it gets the stream's
state, the command and the time, and returns the event to append, or None when the
command changes nothing (pausing a paused queue, resuming one that is not paused), so
that a button pressed twice, or two operators racing, append one event, not two.

Pausing "for all tenants" is the same stream under the reserved tenant `ALL_TENANTS`,
which every worker reads besides the tenants it serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypedDict

import msgspec

from dogqueue.core.cron import KEY_NAMESPACE, KEY_SEPARATOR
from dogqueue.core.errors import InvalidTransition
from dogqueue.core.events import (
    CONTROL_STREAM,
    AnyControlEvent,
    Event,
    QueuePaused,
    QueueResumed,
    SchedulePaused,
    ScheduleResumed,
    ScheduleRunRequested,
)

#: The tenant whose control stream holds the decisions for every tenant (admin only).
ALL_TENANTS = "~all-tenants"

#: The idempotency keys of run-now jobs start with this, then the schedule's name, the
#: separator and the request's version (zero-padded, so keys sort as requests do). It
#: is inside the cron namespace (whose greatest key per prefix storage indexes), yet no
#: schedule's tick key starts with it, since schedule names hold no separator.
RUN_NOW_NAMESPACE = f"{KEY_NAMESPACE}{KEY_SEPARATOR}run-now{KEY_SEPARATOR}"


class Controls(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's control stream folded: what is paused, and the run-now requests."""

    #: Queues whose jobs no worker leases.
    paused_queues: frozenset[str] = frozenset()
    #: Schedules whose ticks no worker enqueues.
    paused_schedules: frozenset[str] = frozenset()
    #: Each run-now request as (schedule, version of its event), oldest first.
    run_requests: tuple[tuple[str, int], ...] = ()
    #: The version of the stream's newest event (0: none yet).
    version: int = 0


class ControlCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Fields every control command carries."""

    tenant_id: str
    at: datetime
    actor: str | None = None


class QueueCommand(ControlCommand, frozen=True):
    """A decision about `queue`."""

    queue: str


class ScheduleCommand(ControlCommand, frozen=True):
    """A decision about the schedule named `schedule`."""

    schedule: str


class PauseQueue(QueueCommand, frozen=True):
    """Stop workers leasing from `queue`."""


class ResumeQueue(QueueCommand, frozen=True):
    """Let workers lease from `queue` again."""


class PauseSchedule(ScheduleCommand, frozen=True):
    """Stop workers enqueueing the schedule's ticks."""


class ResumeSchedule(ScheduleCommand, frozen=True):
    """Let workers enqueue the schedule's ticks again."""


class RunSchedule(ScheduleCommand, frozen=True):
    """Run the schedule's job once now."""


AnyControlCommand = PauseQueue | ResumeQueue | PauseSchedule | ResumeSchedule | RunSchedule


class _Common(TypedDict):
    tenant_id: str
    job_id: str
    version: int
    at: datetime
    actor: str | None


def decide_control(state: Controls, command: AnyControlCommand) -> AnyControlEvent | None:
    """The event that carries out `command` on the stream in `state`, or None when it
    would change nothing."""
    common = _Common(
        tenant_id=command.tenant_id,
        job_id=CONTROL_STREAM,
        version=state.version + 1,
        at=command.at,
        actor=command.actor,
    )
    match command:
        case PauseQueue(queue=queue):
            return None if queue in state.paused_queues else QueuePaused(queue=queue, **common)
        case ResumeQueue(queue=queue):
            return QueueResumed(queue=queue, **common) if queue in state.paused_queues else None
        case PauseSchedule(schedule=name):
            if name in state.paused_schedules:
                return None
            return SchedulePaused(schedule=name, **common)
        case ResumeSchedule(schedule=name):
            if name not in state.paused_schedules:
                return None
            return ScheduleResumed(schedule=name, **common)
        case RunSchedule(schedule=name):
            return ScheduleRunRequested(schedule=name, **common)


def evolve_controls(state: Controls, event: Event) -> Controls:
    """The state after `event`; a stream's events come with versions 1, 2, 3 ..."""
    if event.version != state.version + 1:
        raise InvalidTransition(
            f"{event.type} control event has version {event.version}, expected {state.version + 1}"
        )
    replace = msgspec.structs.replace
    match event:
        case QueuePaused(queue=queue):
            state = replace(state, paused_queues=state.paused_queues | {queue})
        case QueueResumed(queue=queue):
            state = replace(state, paused_queues=state.paused_queues - {queue})
        case SchedulePaused(schedule=name):
            state = replace(state, paused_schedules=state.paused_schedules | {name})
        case ScheduleResumed(schedule=name):
            state = replace(state, paused_schedules=state.paused_schedules - {name})
        case ScheduleRunRequested(schedule=name):
            state = replace(state, run_requests=(*state.run_requests, (name, event.version)))
        case _:
            raise InvalidTransition(f"{event.type} event on a control stream")
    return replace(state, version=event.version)


def fold_controls(events: Iterable[Event]) -> Controls:
    """The state of one tenant's control stream, from its events in order."""
    state = Controls()
    for event in events:
        state = evolve_controls(state, event)
    return state


def run_now_key(schedule: str, version: int) -> str:
    """The idempotency key of the job a run-now request (its event's `version`) makes."""
    return f"{RUN_NOW_NAMESPACE}{schedule}{KEY_SEPARATOR}{version:012d}"


def run_now_prefix(schedule: str) -> str:
    """What every run-now key of `schedule` starts with."""
    return f"{RUN_NOW_NAMESPACE}{schedule}{KEY_SEPARATOR}"


def requested_runs(state: Controls, schedule: str, after: int = 0) -> list[int]:
    """The versions of the schedule's run-now requests after version `after`."""
    return [version for name, version in state.run_requests if name == schedule and version > after]


def last_run_done(schedule: str, latest_key: str | None) -> int:
    """The version of the newest run-now request of `schedule` that has its job, given
    the greatest run-now key of its jobs (requests are carried out in order); 0: none."""
    prefix = run_now_prefix(schedule)
    if latest_key is None or not latest_key.startswith(prefix):
        return 0
    return int(latest_key[len(prefix) :])


def pending_runs(state: Controls, schedule: str, latest_key: str | None) -> list[int]:
    """The versions of the schedule's run-now requests with no job yet."""
    return requested_runs(state, schedule, last_run_done(schedule, latest_key))
