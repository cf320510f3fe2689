"""The immutable facts of a job's life, as appended to the log.

Every event names its tenant, job and per-job `version` (1 for `enqueued`, then +1 per
event), which the log keeps unique, so two writers can never both extend one job's
history from the same state. `seq` is the global log position, assigned when the event
is appended; it is not part of the encoded bytes.

Schema evolution: add fields with defaults only; never rename or retype a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import msgspec

from dogqueue.core.message import JobMessage


class Event(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True, gc=False
):
    """Fields every event carries."""

    tenant_id: str
    job_id: str
    #: Position in this job's history, from 1.
    version: int
    #: When the event happened (aware, UTC).
    at: datetime
    #: Global log position; 0 until appended.
    seq: int = 0

    TYPE: ClassVar[str]

    @property
    def type(self) -> str:
        """The event's type name, as stored in the log (e.g. "enqueued")."""
        return self.TYPE


class Enqueued(Event, frozen=True, tag="enqueued"):
    """The job entered the queue. `message.run_at` is its resolved first schedule (UTC)."""

    TYPE: ClassVar[str] = "enqueued"
    message: JobMessage
    #: W3C trace context of the enqueuing span, for tracing (optional).
    trace_context: dict[str, str] | None = None
    #: The parents (of `message.after`) not yet completed when the job was created: while
    #: any is left the job is WAITING.
    waiting_for: tuple[str, ...] = ()


class Leased(Event, frozen=True, tag="leased"):
    """A worker took the job under fencing token `token` until `expires_at`."""

    TYPE: ClassVar[str] = "leased"
    token: int
    attempt: int
    expires_at: datetime


class Heartbeat(Event, frozen=True, tag="heartbeat"):
    """The lease holder extended its lease to `expires_at`."""

    TYPE: ClassVar[str] = "heartbeat"
    token: int
    expires_at: datetime
    #: How far the job said it was (0.0 to 1.0), when the heartbeat reported progress.
    progress: float | None = None
    #: What the job said about its progress.
    progress_message: str | None = None


class Completed(Event, frozen=True, tag="completed"):
    """The lease holder finished the job; `result` is its encoded result, if any."""

    TYPE: ClassVar[str] = "completed"
    token: int
    result: bytes | None = None


class Failed(Event, frozen=True, tag="failed"):
    """The lease holder reported a failure. `retry_at` is when the job runs again
    (the jitter is already applied), or None when the failure is final."""

    TYPE: ClassVar[str] = "failed"
    token: int
    error: str
    retry_at: datetime | None = None


class Canceled(Event, frozen=True, tag="canceled"):
    """A caller canceled the job; nothing can change it afterwards."""

    TYPE: ClassVar[str] = "canceled"
    #: Who canceled it (e.g. "web:admin", "cli:alice"), when the caller said so.
    actor: str | None = None


class Expired(Event, frozen=True, tag="expired"):
    """The lease ran out before an acknowledgement: a failed attempt ("lease expired").
    `retry_at` as for `failed`."""

    TYPE: ClassVar[str] = "expired"
    token: int
    retry_at: datetime | None = None


class Released(Event, frozen=True, tag="released"):
    """The lease holder gave the job back unstarted or unfinished (graceful shutdown, a
    deploy hold); the attempt does not count."""

    TYPE: ClassVar[str] = "released"
    token: int
    #: Why, when the holder said (a deploy hold: what keeps its code from running it).
    reason: str | None = None
    #: A deploy hold: until when workers give it back before it fails for good.
    until: datetime | None = None


class Requeued(Event, frozen=True, tag="requeued"):
    """An operator put a failed (or canceled) job back in the queue with fresh attempts."""

    TYPE: ClassVar[str] = "requeued"
    #: Who requeued it, when the caller said so.
    actor: str | None = None


class ParentFinished(Event, frozen=True, tag="parent_finished"):
    """A parent this WAITING job was waiting for ended with `parent_status` ("completed",
    "failed" or "canceled"); `reason` is the parent's error, if it had one. After the
    last parent the job is ENQUEUED, or CANCELED when a parent did not complete and the
    job did not opt in to run anyway (`on_parent_failure="run"`)."""

    TYPE: ClassVar[str] = "parent_finished"
    parent_id: str
    parent_status: str
    reason: str | None = None


class ControlEvent(Event, frozen=True):
    """An operator's decision about a tenant's queues or schedules (`dogqueue.core.controls`),
    not about one job: it lives on the tenant's control stream (`job_id` is
    `CONTROL_STREAM`), which no job projection, fold or job count includes. `actor`
    names who decided it (e.g. "cli:alice", "web:admin"), when the caller said so."""


class QueueControl(ControlEvent, frozen=True):
    """A decision about the tenant's `queue`."""

    queue: str
    actor: str | None = None


class ScheduleControl(ControlEvent, frozen=True):
    """A decision about the tenant's schedule named `schedule`."""

    schedule: str
    actor: str | None = None


class QueuePaused(QueueControl, frozen=True, tag="queue_paused"):
    """Workers stop leasing the tenant's jobs in `queue` (running jobs finish)."""

    TYPE: ClassVar[str] = "queue_paused"


class QueueResumed(QueueControl, frozen=True, tag="queue_resumed"):
    """Workers lease from the paused `queue` again."""

    TYPE: ClassVar[str] = "queue_resumed"


class SchedulePaused(ScheduleControl, frozen=True, tag="schedule_paused"):
    """Workers enqueue no tick of the schedule."""

    TYPE: ClassVar[str] = "schedule_paused"


class ScheduleResumed(ScheduleControl, frozen=True, tag="schedule_resumed"):
    """Workers enqueue the paused schedule's ticks again (under its catch-up policy)."""

    TYPE: ClassVar[str] = "schedule_resumed"


class ScheduleRunRequested(ScheduleControl, frozen=True, tag="schedule_run_requested"):
    """Run the schedule's job once now, outside its ticks: the next worker serving the
    schedule enqueues it, exactly once per request (keyed by this event's version)."""

    TYPE: ClassVar[str] = "schedule_run_requested"


#: The control events, by type name.
AnyControlEvent = (
    QueuePaused | QueueResumed | SchedulePaused | ScheduleResumed | ScheduleRunRequested
)

#: The reserved stream (the `job_id` of its events) of each tenant's control events.
CONTROL_STREAM = "~controls"

AnyEvent = (
    Enqueued
    | Leased
    | Heartbeat
    | Completed
    | Failed
    | Canceled
    | Expired
    | Released
    | Requeued
    | ParentFinished
    | QueuePaused
    | QueueResumed
    | SchedulePaused
    | ScheduleResumed
    | ScheduleRunRequested
)

#: The type names of all events, in the order they were introduced.
EVENT_TYPES: tuple[str, ...] = tuple(
    cls.TYPE
    for cls in (
        Enqueued,
        Leased,
        Heartbeat,
        Completed,
        Failed,
        Canceled,
        Expired,
        Released,
        Requeued,
        ParentFinished,
        QueuePaused,
        QueueResumed,
        SchedulePaused,
        ScheduleResumed,
        ScheduleRunRequested,
    )
)


def is_control(event: Event) -> bool:
    """Whether `event` is a control event (on a tenant's control stream), which folds
    of job state skip."""
    return isinstance(event, ControlEvent)
