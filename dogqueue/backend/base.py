"""The part every built-in backend shares: input checks and the engine's units of work.

A backend supplies transactions (`_submit`, which runs one `dogqueue.engine.Unit`) and a
few reads; everything else, and so every semantic rule, lives once, here and in the core.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from dogqueue.backend.browse import JobBrowser
from dogqueue.clock import Clock, utc_now
from dogqueue.core import cron
from dogqueue.core import validation as check
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import ScheduleSpec
from dogqueue.core.errors import BackendClosed, InvalidInput, JobNotFound, QueueError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import Completion, Failure, JobInfo, LeasedJob, Settlement
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.projection import JobKey
from dogqueue.core.status import JobStatus
from dogqueue.core.workers import FORGET_AFTER, WorkerPresence, read_presences, stored_presence
from dogqueue.engine import Engine, T, Unit, Work
from dogqueue.ids import new_job_id
from dogqueue.log.chain import check_audit_key
from dogqueue.log.reader import LogReader

__all__ = ["CancelListener", "EngineBackend", "T", "Work"]

#: Called with (tenant_id, job_id) after a `cancel_job` in this process committed.
CancelListener = Callable[[str, str], None]


class EngineBackend(abc.ABC):
    """Implements the Backend contract on top of `_submit` and the read hooks."""

    def __init__(
        self,
        *,
        config: QueueConfig | None = None,
        clock: Clock | None = None,
        draw: Callable[[], float] | None = None,
        audit_key: bytes | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        if config is not None and not isinstance(config, QueueConfig):
            raise InvalidInput("config", "must be a QueueConfig")
        #: The key of the log's keyed chain (None: a plain hash chain); see
        #: `dogqueue.log.chain.chain_hash`. Every writer of one log must use the same.
        self.audit_key = check_audit_key(audit_key)
        self.clock: Clock = clock or utc_now
        self._engine = Engine(
            config or QueueConfig(), new_id=new_id or new_job_id, draw=draw or random.random
        )
        self._opened = False
        self._closed = False
        self._change_waiters: set[asyncio.Future[None]] = set()
        self._cancel_listeners: list[CancelListener] = []
        self._orphan_releases: set[asyncio.Future[None]] = set()

    @property
    def engine(self) -> Engine:
        """The engine that makes this backend's units of work (for `run_unit`)."""
        return self._engine

    @property
    def config(self) -> QueueConfig:
        """The settings in force; assigning one takes effect for the next call."""
        return self._engine.config

    @config.setter
    def config(self, value: QueueConfig) -> None:
        if not isinstance(value, QueueConfig):
            raise InvalidInput("config", "must be a QueueConfig")
        self._engine.config = value

    def now(self) -> datetime:
        """The injected clock's time, checked to be aware and given in UTC."""
        now = self.clock()
        if now.tzinfo is None:
            raise InvalidInput("clock", "returned a naive datetime")
        return now if now.tzinfo is UTC else now.astimezone(UTC)

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Open storage (also done on first use); idempotent."""
        if self._closed:
            raise BackendClosed("backend is closed")
        if not self._opened:
            await self._open()
            self._opened = True

    async def close(self) -> None:
        """Release storage; idempotent. Calls made from now on, and calls racing this
        one that have not reached storage yet, raise BackendClosed."""
        if self._opened and not self._closed:
            self._closed = True
            await self._close()
        self._closed = True

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _ready(self) -> None:
        if not self._opened or self._closed:
            await self.open()

    # -- change notification ---------------------------------------------------------

    def _notify_change(self) -> None:
        """Wake every `wait_for_change` of this backend: something became leasable."""
        waiters, self._change_waiters = self._change_waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def notify_change(self) -> None:
        """Wake this backend's `wait_for_change` callers after a write made with `run_unit`."""
        self._notify_change()

    async def wait_for_change(self, max_wait: float) -> None:
        """Return when a job may have become leasable, or after `max_wait` seconds."""
        if max_wait <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._change_waiters.add(waiter)
        # A timer on the waiter itself: no shield and timeout task to wake on each change.
        timeout = loop.call_later(max_wait, _set_pending, waiter)
        try:
            await waiter
        finally:
            timeout.cancel()
            self._change_waiters.discard(waiter)

    def add_cancel_listener(self, listener: CancelListener) -> Callable[[], None]:
        """Call `listener(tenant_id, job_id)` after each committed `cancel_job` made
        through this backend object; return a function that removes it."""
        self._cancel_listeners.append(listener)

        def remove() -> None:
            if listener in self._cancel_listeners:
                self._cancel_listeners.remove(listener)

        return remove

    # -- hooks for each backend ------------------------------------------------------

    @abc.abstractmethod
    async def _open(self) -> None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...

    @abc.abstractmethod
    def _submit(self, unit: Unit[T]) -> asyncio.Future[T]:
        """The seam to storage. Queue `unit` for a transaction at the clock's time (a
        backend may give a batch of units one transaction), in call order; the future
        resolves with `unit.run(tx, now)`'s result, or its error, after the commit. The
        unit reads only what `unit.reads` declares (a backend that fetches ahead fetches
        that; `dogqueue.backend.kit.strictview.strictly` checks it). All of its events
        commit, or none. Cancelling the future does not stop the commit."""

    async def run_unit(self, unit: Unit[T]) -> T:
        """Run a unit of work (one of `engine`'s, or a test's own) in a transaction;
        return its result once committed. If it raises, nothing it wrote is kept. The
        public methods are built on it; tests use it to inject faults, for example a
        unit that writes and then fails as a lost connection would."""
        await self._ready()
        return await self._submit(unit)

    @abc.abstractmethod
    async def _read_job(self, tenant_id: str, job_id: str) -> JobInfo | None: ...

    @abc.abstractmethod
    async def _latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        """The greatest idempotency key of the tenant starting with `prefix` (in the
        cron namespace) and its job's id, as committed; or None."""

    @abc.abstractmethod
    async def _read_history(self, tenant_id: str, job_id: str) -> list[AnyEvent]: ...

    @abc.abstractmethod
    async def _ready_tenants(self, queues: tuple[str, ...], now: datetime) -> list[str]: ...

    @abc.abstractmethod
    async def _next_run_at(
        self, queues: tuple[str, ...], tenant_ids: tuple[str, ...] | None
    ) -> datetime | None: ...

    @abc.abstractmethod
    async def _read_events(self, after_seq: int, limit: int | None) -> list[AnyEvent]: ...

    @abc.abstractmethod
    async def _projected_jobs(self) -> dict[JobKey, JobInfo]: ...

    @abc.abstractmethod
    async def _rebuild_projections(self) -> int: ...

    @abc.abstractmethod
    async def _announce_worker(
        self, worker_id: str, last_seen: datetime, data: bytes, forget_before: datetime
    ) -> None: ...

    @abc.abstractmethod
    async def _read_workers(self, seen_since: datetime) -> list[bytes]: ...

    # -- the contract ----------------------------------------------------------------

    def _lease_duration(self, lease_duration: timedelta | None) -> timedelta:
        if lease_duration is None:
            return self.config.default_lease_duration
        return check.check_lease_duration(lease_duration)

    async def enqueue(
        self, ctx: QueueCtx, message: JobMessage, *, trace_context: dict[str, str] | None = None
    ) -> str:
        """Append the job; return its new id."""
        prepared = check.prepare_enqueue(ctx, (message,), self.config, trace_context=trace_context)
        await self._ready()
        ids = await self._submit(self._engine.enqueue_unit(prepared))
        self._notify_change()
        return ids[0]

    async def enqueue_many(self, ctx: QueueCtx, messages: Sequence[JobMessage]) -> list[str]:
        """Append all jobs or none; return their ids in order."""
        prepared = check.prepare_enqueue(ctx, messages, self.config)
        if not prepared.messages:
            return []
        await self._ready()
        ids = await self._submit(self._engine.enqueue_unit(prepared))
        self._notify_change()
        return ids

    async def enqueue_ticks(
        self, ctx: QueueCtx, schedule: ScheduleSpec, now: datetime
    ) -> list[str]:
        """Enqueue the schedule's ticks due at `now` after its newest tick in the log
        (at most `catch_up` of them), one job per tick, keyed by the tick: exactly once
        per tick however many callers race. Return the new jobs' ids, oldest tick first."""
        tenant = check.check_ctx(ctx)
        spec = cron.check_schedule(schedule, self.config)
        at = check.check_aware("now", now).astimezone(UTC)
        await self._ready()
        # A read first: when nothing is due (most calls, and every caller but one when
        # several race) no write transaction is started at all.
        latest = await self._latest_key(tenant, cron.key_prefix(spec.name))
        due = len(cron.tick_messages(spec, None if latest is None else latest[0], at))
        if not due:
            return []
        ids = await self._submit(self._engine.ticks_unit(tenant, spec, at, due))
        if ids:
            self._notify_change()
        return ids

    async def latest_tick(self, ctx: QueueCtx, name: str) -> tuple[datetime, str] | None:
        """The newest tick of the schedule `name` enqueued in the log, and its job's id;
        None if it has none."""
        tenant = check.check_ctx(ctx)
        checked = cron.check_schedule_name(name)
        await self._ready()
        latest = await self._latest_key(tenant, cron.key_prefix(checked))
        if latest is None:
            return None
        tick = cron.tick_of_key(checked, latest[0])
        return None if tick is None else (tick, latest[1])

    async def dequeue(
        self, ctx: QueueCtx, queues: Sequence[str], *, lease_duration: timedelta | None = None
    ) -> LeasedJob | None:
        """Lease the tenant's next ready job in `queues`, or return None."""
        leases = await self.dequeue_many(ctx, queues, 1, lease_duration=lease_duration)
        return leases[0] if leases else None

    async def dequeue_many(
        self,
        ctx: QueueCtx,
        queues: Sequence[str],
        n: int,
        *,
        lease_duration: timedelta | None = None,
    ) -> list[LeasedJob]:
        """Lease up to `n` ready jobs in dequeue order, in one transaction.

        A caller cancelled while its leases commit does not strand them: they are
        released (not counted as an attempt) before the cancellation propagates."""
        tenant = check.check_ctx(ctx)
        names = check.check_queues(queues)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidInput("n", "must be a positive int")
        duration = self._lease_duration(lease_duration)
        await self._ready()
        unit = self._submit(self._engine.dequeue_unit(tenant, names, duration, n))
        try:
            return await asyncio.shield(unit)
        except asyncio.CancelledError:
            unit.add_done_callback(lambda done: self._release_orphans(tenant, done))
            raise

    def _release_orphans(self, tenant: str, unit: asyncio.Future[list[LeasedJob]]) -> None:
        """Give back leases whose caller was cancelled before it could see them."""
        if unit.cancelled() or unit.exception() is not None:
            return
        for lease in unit.result():
            task = asyncio.ensure_future(self._release_orphan(tenant, lease))
            self._orphan_releases.add(task)
            task.add_done_callback(self._orphan_releases.discard)

    async def _release_orphan(self, tenant: str, lease: LeasedJob) -> None:
        with contextlib.suppress(QueueError):
            await self._submit(self._engine.release_unit(tenant, lease))
        self._notify_change()

    async def heartbeat(
        self,
        ctx: QueueCtx,
        lease: LeasedJob,
        *,
        lease_duration: timedelta | None = None,
        progress: float | None = None,
        progress_message: str | None = None,
    ) -> LeasedJob:
        """Extend a valid lease; the token stays the same. `progress` (0.0 to 1.0) and
        `progress_message` are recorded in the heartbeat event."""
        tenant = check.check_ctx(ctx)
        _check_lease(lease)
        duration = self._lease_duration(lease_duration)
        reported = check.check_progress(progress, progress_message)
        await self._ready()
        return await self._submit(self._engine.heartbeat_unit(tenant, lease, duration, reported))

    async def ack_complete(
        self, ctx: QueueCtx, lease: LeasedJob, result: bytes | None = None
    ) -> None:
        """Mark the leased job COMPLETED."""
        tenant = check.check_ctx(ctx)
        _check_lease(lease)
        if result is not None and not isinstance(result, bytes):
            raise InvalidInput("result", "must be bytes or None")
        await self._ready()
        released = await self._submit(self._engine.complete_unit(tenant, lease, result))
        if released:
            self._notify_change()

    async def ack_fail(
        self, ctx: QueueCtx, lease: LeasedJob, error: str, *, retry: bool = True
    ) -> JobStatus:
        """Record a failed attempt; ENQUEUED if a retry was scheduled, else FAILED.
        Characters of `error` that cannot be stored (lone surrogates) become U+FFFD."""
        tenant = check.check_ctx(ctx)
        _check_lease(lease)
        if not isinstance(error, str):
            raise InvalidInput("error", "must be a str")
        error = check.recordable_text(error)
        await self._ready()
        status = await self._submit(self._engine.fail_unit(tenant, lease, error, bool(retry)))
        self._notify_change()
        return status

    async def settle_many(
        self, ctx: QueueCtx, settlements: Sequence[Settlement]
    ) -> list[JobStatus | QueueError]:
        """Acknowledge many leased jobs of one tenant in one transaction, each on its own:
        for each, the job's status afterwards (COMPLETED, ENQUEUED for a scheduled retry,
        FAILED), or the error refusing it (LeaseLost, JobCanceled, JobNotFound), which
        appended nothing for that job and does not refuse the others. Malformed input
        raises InvalidInput and settles none."""
        tenant = check.check_ctx(ctx)
        if isinstance(settlements, (str, bytes)) or not isinstance(settlements, Sequence):
            raise InvalidInput("settlements", "must be a list of Completion or Failure")
        batch = tuple(_checked_settlement(item) for item in settlements)
        if not batch:
            return []
        await self._ready()
        results = await self._submit(self._engine.settle_unit(tenant, batch))
        # A retry can be leased later, and a completion may have released dependents.
        if any(isinstance(item, Failure) for item in batch) or JobStatus.COMPLETED in results:
            self._notify_change()
        return results

    async def release(
        self,
        ctx: QueueCtx,
        lease: LeasedJob,
        *,
        reason: str | None = None,
        until: datetime | None = None,
    ) -> None:
        """Give the job back at once without counting the attempt; `reason` (why) and
        `until` (a deploy hold's end) are recorded in the `released` event."""
        tenant = check.check_ctx(ctx)
        _check_lease(lease)
        if reason is not None:
            if not isinstance(reason, str):
                raise InvalidInput("reason", "must be a str or None")
            reason = check.recordable_text(reason)
        if until is not None:
            until = check.check_aware("until", until)
        await self._ready()
        await self._submit(self._engine.release_unit(tenant, lease, reason=reason, until=until))
        self._notify_change()

    async def cancel_job(
        self, ctx: QueueCtx, job_id: str, *, actor: str | None = None
    ) -> JobStatus:
        """Cancel the job unless it is terminal; return its status afterwards. `actor`
        (who asked) is recorded in the `canceled` event."""
        tenant = check.check_ctx(ctx)
        check.check_job_id(job_id)
        _check_actor(actor)
        await self._ready()
        status = await self._submit(self._engine.cancel_unit(tenant, job_id, actor=actor))
        if status is JobStatus.CANCELED:
            self._announce_cancel(tenant, job_id)
        return status

    async def cancel_workflow(
        self, ctx: QueueCtx, job_id: str, *, actor: str | None = None
    ) -> list[str]:
        """Cancel the job and every job that depends on it, directly or through others,
        in one transaction; return the ids of the jobs this canceled (jobs already
        terminal are left as they are). `actor` is recorded in each `canceled` event."""
        tenant = check.check_ctx(ctx)
        check.check_job_id(job_id)
        _check_actor(actor)
        await self._ready()
        canceled = await self._submit(
            self._engine.cancel_workflow_unit(tenant, job_id, actor=actor)
        )
        for member in canceled:
            self._announce_cancel(tenant, member)
        if canceled:
            self._notify_change()
        return canceled

    def _announce_cancel(self, tenant_id: str, job_id: str) -> None:
        """Tell this object's cancel listeners (and, where storage is shared across
        hosts, the other hosts') that the job was canceled."""
        for listener in list(self._cancel_listeners):
            listener(tenant_id, job_id)

    async def retry_job(
        self,
        ctx: QueueCtx,
        job_id: str,
        *,
        include_canceled: bool = False,
        actor: str | None = None,
    ) -> JobStatus:
        """Put a FAILED (or, with the flag, CANCELED) job back to ENQUEUED. `actor` (who
        asked) is recorded in the `requeued` event."""
        tenant = check.check_ctx(ctx)
        check.check_job_id(job_id)
        _check_actor(actor)
        await self._ready()
        status = await self._submit(
            self._engine.requeue_unit(tenant, job_id, include_canceled, actor=actor)
        )
        self._notify_change()
        return status

    async def get_job(self, ctx: QueueCtx, job_id: str) -> JobInfo:
        """The job's current state (equal to folding its history)."""
        tenant = check.check_ctx(ctx)
        check.check_job_id(job_id)
        await self._ready()
        job = await self._read_job(tenant, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def get_status(self, ctx: QueueCtx, job_id: str) -> JobStatus:
        """The job's current status."""
        return (await self.get_job(ctx, job_id)).status

    async def history(self, ctx: QueueCtx, job_id: str) -> list[AnyEvent]:
        """The job's events in log order."""
        tenant = check.check_ctx(ctx)
        check.check_job_id(job_id)
        await self._ready()
        events = await self._read_history(tenant, job_id)
        if not events:
            raise JobNotFound(job_id)
        return events

    async def reap_expired(self) -> int:
        """Expire every lease, across tenants, whose time has come; return how many."""
        await self._ready()
        reaped = await self._submit(self._engine.reclaim_unit(None))
        if reaped:
            self._notify_change()
        return reaped

    async def ready_tenants(self, queues: Sequence[str]) -> list[str]:
        """Tenants with at least one job in `queues` that can be leased now."""
        names = check.check_queues(queues)
        await self._ready()
        return await self._ready_tenants(names, self.now())

    async def next_run_at(
        self, queues: Sequence[str], tenant_ids: Sequence[str] | None = None
    ) -> datetime | None:
        """The earliest `run_at` of an ENQUEUED job in `queues` (of those tenants)."""
        names = check.check_queues(queues)
        tenants = None
        if tenant_ids is not None:
            tenants = tuple(check.check_name("tenant_id", t) for t in tenant_ids)
        await self._ready()
        return await self._next_run_at(names, tenants)

    async def read_events(self, *, after_seq: int = 0, limit: int | None = None) -> list[AnyEvent]:
        """Events of every tenant with log position > `after_seq`, in log order."""
        await self._ready()
        return await self._read_events(after_seq, limit)

    async def projected_jobs(self) -> dict[JobKey, JobInfo]:
        """The live projection: every job's state, keyed by (tenant_id, job_id)."""
        await self._ready()
        return await self._projected_jobs()

    async def rebuild_projections(self) -> int:
        """Replace the projection with the fold of the log; return events folded."""
        await self._ready()
        return await self._rebuild_projections()

    async def announce_worker(self, presence: WorkerPresence) -> None:
        """Store a worker's presence record, replacing its previous one, and forget
        records not refreshed for FORGET_AFTER."""
        worker_id, seen, data = stored_presence(presence)
        await self._ready()
        await self._announce_worker(worker_id, seen, data, seen - FORGET_AFTER)

    async def read_workers(self, *, seen_since: datetime) -> list[WorkerPresence]:
        """The presence records refreshed at or after `seen_since`, oldest start first."""
        since = check.check_aware("seen_since", seen_since).astimezone(UTC)
        await self._ready()
        return read_presences(await self._read_workers(since))

    @abc.abstractmethod
    def log_reader(self, *, wait_for_own_writes: bool = True) -> LogReader:
        """The stored log, read-only (for the audit tools and metrics); see
        `Backend.log_reader`."""

    @abc.abstractmethod
    def browser(self) -> JobBrowser:
        """The read model the dashboard lists jobs with; see `Backend.browser`."""


def _check_actor(actor: object) -> None:
    if actor is not None:
        check.check_name("actor", actor)


def _checked_settlement(item: object) -> Settlement:
    """A Completion or Failure checked like `ack_complete`'s or `ack_fail`'s arguments."""
    if isinstance(item, Completion):
        _check_lease(item.lease)
        if item.result is not None and not isinstance(item.result, bytes):
            raise InvalidInput("result", "must be bytes or None")
        return item
    if isinstance(item, Failure):
        _check_lease(item.lease)
        if not isinstance(item.error, str):
            raise InvalidInput("error", "must be a str")
        return Failure(
            lease=item.lease, error=check.recordable_text(item.error), retry=bool(item.retry)
        )
    raise InvalidInput("settlements", f"must hold Completion or Failure, not {type(item).__name__}")


def _check_lease(lease: object) -> None:
    if not isinstance(lease, LeasedJob):
        raise InvalidInput("lease", f"must be a LeasedJob, not {type(lease).__name__}")
    if isinstance(lease.lease_token, bool) or not isinstance(lease.lease_token, int):
        raise InvalidInput("lease_token", "must be an int")
    check.check_job_id(lease.job_id)


def _set_pending(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
