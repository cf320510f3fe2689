"""A reference model of the queue's documented semantics, written as plainly as possible.

It shares no code with `dogqueue.core` on purpose: it is a second, independent reading of
the rules (issue 2, semantics 1-10), so a bug in the engine cannot hide in the model too.
Statuses are the plain strings a `JobStatus` compares equal to.

Where the backend draws randomness (the retry jitter) the model keeps the documented
window, and the state machine adopts the backend's value once it has checked it lies inside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ENQUEUED = "enqueued"
LEASED = "leased"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"
WAITING = "waiting"
TERMINAL = (COMPLETED, FAILED, CANCELED)
LEASE_EXPIRED = "lease expired"


@dataclass
class ModelJob:
    """What the model knows about one job."""

    tenant: str
    job_id: str
    queue: str
    priority: int
    max_retries: int
    key: str | None
    #: Position among all successful enqueues (the FIFO tie-breaker).
    order: int
    run_at: datetime
    status: str = ENQUEUED
    attempts: int = 0
    result: bytes | None = None
    last_error: str | None = None
    #: The latest fencing token the backend issued for this job (0: never leased).
    token: int = 0
    lease_expires_at: datetime | None = None
    #: The retry window [earliest, latest] while the backend's jittered run_at is unseen.
    run_at_window: tuple[datetime, datetime] | None = None
    #: The job's event types, in order.
    events: list[str] = field(default_factory=list)
    #: The fields each of those events must hold that the model knows exactly (`at`,
    #: tokens, results, errors, actors, progress...), by event, in order.
    details: list[dict[str, Any]] = field(default_factory=list)
    #: The message as the backend must store it (opaque to the model; None: unknown).
    message: Any = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    #: Workflows: the jobs it runs after, those it still waits for, and whether it runs
    #: even when one of them fails or is canceled.
    parents: tuple[str, ...] = ()
    waiting: list[str] = field(default_factory=list)
    run_anyway: bool = False


@dataclass(frozen=True)
class ModelAck:
    """One acknowledgement in a batch: a completion (`error` None) or a failure."""

    job_id: str
    token: int
    result: bytes | None = None
    error: str | None = None
    retry: bool = True


@dataclass
class Refusal:
    """An operation the model expects the backend to refuse; `kind` is one of
    "not_found", "canceled", "lease_lost", "exists", "invalid", "transition"."""

    kind: str
    job_id: str | None = None


class QueueModel:
    """Jobs in dicts, the events each step should append in a list."""

    def __init__(
        self,
        *,
        base_backoff: timedelta,
        max_backoff: timedelta,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        #: The time every recorded event must carry (None: events' times are not known).
        self.clock = clock
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.jobs: dict[tuple[str, str], ModelJob] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.enqueued_count = 0
        #: (tenant, job_id, event type) appended since the last `take_expected_events`.
        self.expected_events: list[tuple[str, str, str]] = []
        #: Jobs touched since the last `take_touched`.
        self.touched: set[tuple[str, str]] = set()
        #: Each schedule's enqueued ticks and their jobs, by (tenant, schedule name).
        self.ticks: dict[tuple[str, str], dict[datetime, str]] = {}

    # -- bookkeeping ---------------------------------------------------------------------

    def _record(self, job: ModelJob, event_type: str, **fields: Any) -> None:
        job.events.append(event_type)
        if self.clock is not None:
            now = self.clock()
            fields["at"] = job.updated_at = now
            job.finished_at = now if job.status in TERMINAL else None
        job.details.append(fields)
        self.expected_events.append((job.tenant, job.job_id, event_type))
        self.touched.add((job.tenant, job.job_id))

    def take_expected_events(self) -> list[tuple[str, str, str]]:
        """The events expected since the last call, and forget them."""
        events, self.expected_events = self.expected_events, []
        return events

    def take_touched(self) -> list[tuple[str, str]]:
        """The jobs changed since the last call, in a fixed order (a run must replay
        exactly for hypothesis), and forget them."""
        touched, self.touched = self.touched, set()
        return sorted(touched)

    def job(self, tenant: str, job_id: str) -> ModelJob | None:
        """The tenant's job, or None (another tenant's job is None too)."""
        return self.jobs.get((tenant, job_id))

    # -- retry policy --------------------------------------------------------------------

    def retry_window(self, attempt: int, now: datetime) -> tuple[datetime, datetime]:
        """Earliest and latest run_at after failed attempt `attempt`: the delay is
        min(max, base * 2**(attempt-1)), jittered down to a point in [delay/2, delay]."""
        base_us = self.base_backoff // timedelta(microseconds=1)
        max_us = self.max_backoff // timedelta(microseconds=1)
        delay_us = min(max_us, base_us * 2 ** max(attempt - 1, 0))
        return (
            now + timedelta(microseconds=delay_us // 2),
            now + timedelta(microseconds=delay_us),
        )

    def _after_failed_attempt(self, job: ModelJob, error: str, retry: bool, now: datetime) -> None:
        job.last_error = error
        job.lease_expires_at = None
        if retry and job.attempts <= job.max_retries:
            job.status = ENQUEUED
            job.run_at_window = self.retry_window(job.attempts, now)
        else:
            job.status = FAILED

    def adopt_run_at(self, job: ModelJob, run_at: datetime) -> None:
        """Take the jittered retry time the backend chose (checked to lie in the window):
        the job's run_at, and the `retry_at` of the event that scheduled the retry."""
        job.run_at = run_at
        job.run_at_window = None
        for details in reversed(job.details):
            if details.get("retry_at", None) is _PENDING:
                details["retry_at"] = run_at
                break

    # -- operations ----------------------------------------------------------------------

    def check_enqueue(self, tenant: str, keys: list[str | None]) -> Refusal | None:
        """Why a batch with these idempotency keys is refused, or None."""
        given = [key for key in keys if key is not None]
        if len(set(given)) != len(given):
            return Refusal("invalid")
        for key in given:
            existing = self.keys.get((tenant, key))
            if existing is not None:
                return Refusal("exists", existing)
        return None

    def enqueue(
        self,
        tenant: str,
        job_id: str,
        *,
        queue: str,
        priority: int,
        max_retries: int,
        key: str | None,
        run_at: datetime,
        message: Any = None,
        at: datetime | None = None,
    ) -> None:
        """Record a job the backend accepted (`message`: as it must be stored)."""
        self.enqueued_count += 1
        job = ModelJob(
            tenant=tenant,
            job_id=job_id,
            queue=queue,
            priority=priority,
            max_retries=max_retries,
            key=key,
            order=self.enqueued_count,
            run_at=run_at,
            message=message,
            created_at=at,
        )
        self.jobs[(tenant, job_id)] = job
        if key is not None:
            self.keys[(tenant, key)] = job_id
        self._record(job, "enqueued", **({} if message is None else {"message": message}))

    def expire(self, tenant: str | None, now: datetime) -> list[ModelJob]:
        """Expire every lease (of one tenant, or all) whose time has come."""
        expired = [
            job
            for job in self.jobs.values()
            if job.status == LEASED
            and (tenant is None or job.tenant == tenant)
            and job.lease_expires_at is not None
            and job.lease_expires_at <= now
        ]
        expired.sort(key=lambda job: (job.lease_expires_at, job.order))
        for job in expired:
            token = job.token
            self._after_failed_attempt(job, LEASE_EXPIRED, True, now)
            self._record(job, "expired", token=token, retry_at=self._retry_at(job))
            self._ended(job)
        return expired

    def next_ready(self, tenant: str, queues: list[str], now: datetime) -> ModelJob | None:
        """The job dequeue must pick: highest priority, earliest run_at, earliest enqueued."""
        ready = self.ready_in_order(tenant, queues, now)
        return ready[0] if ready else None

    def ready_in_order(self, tenant: str, queues: list[str], now: datetime) -> list[ModelJob]:
        """Every job dequeue could pick now, in the order it must pick them (what
        `dequeue_many` leases, up to its limit)."""
        ready = [
            job
            for job in self.jobs.values()
            if job.tenant == tenant
            and job.status == ENQUEUED
            and job.queue in queues
            and self._due(job, now)
        ]
        return sorted(ready, key=lambda job: (-job.priority, job.run_at, job.order))

    @staticmethod
    def _due(job: ModelJob, now: datetime) -> bool:
        if job.run_at_window is not None:
            # Retried during this very step: even the earliest retry time is later.
            assert job.run_at_window[0] > now, "a retry window reaches back to now"
            return False
        return job.run_at <= now

    def lease(self, job: ModelJob, token: int, expires_at: datetime) -> None:
        """Record the lease the backend issued for `job`."""
        job.status = LEASED
        job.attempts += 1
        job.token = token
        job.lease_expires_at = expires_at
        self._record(job, "leased", token=token, attempt=job.attempts, expires_at=expires_at)

    def check_lease(self, tenant: str, job_id: str, token: int, now: datetime) -> Refusal | None:
        """Why an acknowledgement or heartbeat under this lease is refused, or None."""
        job = self.job(tenant, job_id)
        if job is None:
            return Refusal("not_found")
        if job.status == CANCELED:
            return Refusal("canceled")
        if job.status != LEASED or token != job.token:
            return Refusal("lease_lost")
        assert job.lease_expires_at is not None
        if now >= job.lease_expires_at:
            return Refusal("lease_lost")
        return None

    def heartbeat(
        self,
        job: ModelJob,
        expires_at: datetime,
        *,
        progress: float | None = None,
        progress_message: str | None = None,
    ) -> None:
        """Extend the job's lease; the progress given is recorded in the event."""
        job.lease_expires_at = expires_at
        self._record(
            job,
            "heartbeat",
            token=job.token,
            expires_at=expires_at,
            progress=progress,
            progress_message=progress_message,
        )

    def complete(self, job: ModelJob, result: bytes | None) -> None:
        """The holder finished the job."""
        job.status = COMPLETED
        job.result = result
        job.lease_expires_at = None
        self._record(job, "completed", token=job.token, result=result)
        self._ended(job)

    def fail(self, job: ModelJob, error: str, retry: bool, now: datetime) -> str:
        """The holder reported a failure; return the status the backend must report."""
        self._after_failed_attempt(job, error, retry, now)
        self._record(job, "failed", token=job.token, error=error, retry_at=self._retry_at(job))
        self._ended(job)
        return job.status

    def settle(self, tenant: str, acks: list[ModelAck], now: datetime) -> list[str | Refusal]:
        """Acknowledgements settled together, in order, each on its own (as if one call
        after another): the status each must report, or why it is refused."""
        outcomes: list[str | Refusal] = []
        for ack in acks:
            refusal = self.check_lease(tenant, ack.job_id, ack.token, now)
            job = self.job(tenant, ack.job_id)
            if refusal is not None or job is None:
                outcomes.append(refusal or Refusal("not_found"))
            elif ack.error is None:
                self.complete(job, ack.result)
                outcomes.append(COMPLETED)
            else:
                outcomes.append(self.fail(job, ack.error, ack.retry, now))
        return outcomes

    def release(self, job: ModelJob) -> None:
        """The holder gave the job back; the attempt does not count."""
        job.status = ENQUEUED
        job.attempts -= 1
        job.lease_expires_at = None
        self._record(job, "released", token=job.token)

    @staticmethod
    def _retry_at(job: ModelJob) -> object:
        """What a failed or expired event's `retry_at` must be: pending until the
        backend's jittered time is adopted, None when no retry was scheduled."""
        return _PENDING if job.run_at_window is not None else None

    def cancel(self, job: ModelJob, actor: str | None = None) -> str:
        """Cancel unless terminal; return the status the backend must report."""
        if job.status in TERMINAL:
            return job.status
        job.status = CANCELED
        job.lease_expires_at = None
        job.waiting = []
        self._record(job, "canceled", actor=actor)
        self._ended(job)
        return CANCELED

    def check_requeue(self, job: ModelJob, include_canceled: bool = False) -> Refusal | None:
        """Only FAILED jobs go back to the queue; CANCELED ones too with the operator's
        override (`include_canceled`), else cancel wins."""
        allowed = (FAILED, CANCELED) if include_canceled else (FAILED,)
        return None if job.status in allowed else Refusal("transition")

    def requeue(self, job: ModelJob, now: datetime, actor: str | None = None) -> None:
        """An operator put a FAILED (or CANCELED) job back with fresh attempts."""
        job.status = ENQUEUED
        job.attempts = 0
        job.run_at = now
        job.run_at_window = None
        job.waiting = []
        self._record(job, "requeued", actor=actor)

    # -- workflows: jobs that run after other jobs ----------------------------------------

    def check_parents(self, tenant: str, parents: list[str]) -> Refusal | None:
        """A job may only run after existing jobs of its own tenant."""
        if any(self.job(tenant, parent) is None for parent in parents):
            return Refusal("invalid")
        return None

    def wait_for(self, job: ModelJob, parents: tuple[str, ...], run_anyway: bool) -> None:
        """Give a just-enqueued job its parents: it waits for those not yet completed,
        and hears at once of those that already failed or were canceled."""
        job.parents = parents
        job.run_anyway = run_anyway
        found = [self.jobs[(job.tenant, parent)] for parent in parents]
        job.waiting = [parent.job_id for parent in found if parent.status != COMPLETED]
        job.details[0]["waiting_for"] = tuple(job.waiting)
        if job.waiting:
            job.status = WAITING
        for parent in found:
            if parent.status in (FAILED, CANCELED) and job.status == WAITING:
                self._hear(job, parent)
                if job.status == CANCELED:
                    self._ended(job)

    def _dependents(self, parent: ModelJob) -> list[ModelJob]:
        """The jobs created after `parent` that name it, oldest first."""
        found = [
            job
            for job in self.jobs.values()
            if job.tenant == parent.tenant and parent.job_id in job.parents
        ]
        return sorted(found, key=lambda job: job.order)

    def _ended(self, ended: ModelJob) -> None:
        """A job became terminal: every job waiting for it hears so; one this cancels
        is heard of by its own dependents in turn (the newest canceled first)."""
        if ended.status not in TERMINAL:
            return
        stack = [ended]
        while stack:
            parent = stack.pop()
            for child in self._dependents(parent):
                if child.status == WAITING and parent.job_id in child.waiting:
                    self._hear(child, parent)
                    if child.status == CANCELED:
                        stack.append(child)

    def _hear(self, child: ModelJob, parent: ModelJob) -> None:
        child.waiting.remove(parent.job_id)
        if parent.status != COMPLETED and not child.run_anyway:
            failed = parent.status == FAILED and parent.last_error  # an empty error: no reason
            because = f": {parent.last_error}" if failed else ""
            child.status = CANCELED
            child.last_error = f"parent {parent.job_id} {parent.status}{because}"
            child.waiting = []
        elif not child.waiting:
            child.status = ENQUEUED
        self._record(
            child,
            "parent_finished",
            parent_id=parent.job_id,
            parent_status=parent.status,
            reason=parent.last_error if parent.status == FAILED else None,
        )

    def cancel_workflow(self, root: ModelJob, actor: str | None = None) -> list[str]:
        """Cancel `root` and every job after it, directly or not (breadth first);
        return the ids that were not terminal before."""
        order = [root]
        for job in order:
            order.extend(child for child in self._dependents(job) if child not in order)
        live = [job for job in order if job.status not in TERMINAL]
        for job in live:
            self.cancel(job, actor=actor)
        return [job.job_id for job in live]


# -- schedules (cron) ---------------------------------------------------------------------

#: A stand-in for a retry time the backend has not shown yet.
_PENDING = object()

#: A schedule whose ticks were never enqueued starts with its latest tick only if that
#: came at most this long ago.
FIRST_TICK_GRACE = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def schedule_key(name: str, tick: datetime) -> str:
    """The idempotency key a schedule's job for `tick` holds (documented format)."""
    return f"dogqueue.cron:{name}@{tick.astimezone(UTC):%Y-%m-%dT%H:%M}Z"


def due_ticks(
    model: QueueModel,
    tenant: str,
    name: str,
    every: timedelta,
    catch_up: int,
    now: datetime,
    offset: timedelta = timedelta(0),
) -> list[datetime]:
    """The ticks `enqueue_ticks` must enqueue at `now`, oldest first, for a schedule
    firing every `every` (a divisor of a day) in a zone `offset` ahead of UTC with no
    daylight saving (so its ticks are multiples of `every` since the epoch, local time):
    those after the newest enqueued tick, at most the newest `catch_up`; with none
    enqueued yet, the latest tick if it came within FIRST_TICK_GRACE."""
    local_epoch = _EPOCH - offset
    latest = local_epoch + ((now - local_epoch) // every) * every
    known = model.ticks.get((tenant, name))
    if not known:
        return [latest] if now - latest <= FIRST_TICK_GRACE else []
    newest = max(known)
    due: list[datetime] = []
    tick = latest
    while tick > newest and len(due) < catch_up:
        due.append(tick)
        tick -= every
    return due[::-1]


def record_tick(model: QueueModel, tenant: str, name: str, tick: datetime, job_id: str) -> None:
    """Remember that the schedule's job for `tick` is `job_id`."""
    model.ticks.setdefault((tenant, name), {})[tick] = job_id
