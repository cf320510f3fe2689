"""The storage contract every dogqueue backend fulfils, and that the shared conformance
suite (dogqueue.testing.conformance) and the property suite (dogqueue.testing) check."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from dogqueue.backend.browse import JobBrowser
from dogqueue.clock import Clock
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import ScheduleSpec
from dogqueue.core.errors import QueueError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo, LeasedJob, Settlement
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.projection import JobKey
from dogqueue.core.status import JobStatus
from dogqueue.core.workers import WorkerPresence
from dogqueue.log.reader import LogReader


@runtime_checkable
class Backend(Protocol):
    """A job log with per-tenant projections. Every method returns only after the
    events it appended are committed; a refused call appends nothing.

    Positions (named in `dogqueue.log.reader`): what a tenant is shown (`history`,
    `get_job`) carries tenant positions (`TenantPos`), dense per tenant, which reveal
    nothing about other tenants: an event's `seq` is its position among its tenant's
    events, a job's `enqueue_seq` that of its enqueued event. The global readers
    (`read_events`, `projected_jobs`, `log_reader`) carry log positions (`LogPos`),
    which order the whole log. A writer's own numbering (`WriterSeq`, PostgreSQL) is
    never shown."""

    config: QueueConfig
    clock: Clock

    async def open(self) -> None:
        """Open storage (also done on first use); idempotent."""
        ...

    async def close(self) -> None:
        """Release storage; idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def enqueue(
        self, ctx: QueueCtx, message: JobMessage, *, trace_context: dict[str, str] | None = None
    ) -> str:
        """Append the job; return its new id."""
        ...

    async def enqueue_many(self, ctx: QueueCtx, messages: Sequence[JobMessage]) -> list[str]:
        """Append all jobs or none; return their ids in order."""
        ...

    async def enqueue_ticks(
        self, ctx: QueueCtx, schedule: ScheduleSpec, now: datetime
    ) -> list[str]:
        """Enqueue the schedule's ticks due at `now` after its newest tick in the log
        (at most `catch_up` of them), one job per tick keyed by the tick
        (`dogqueue.core.cron.tick_key`): exactly once per tick however many callers race.
        Return the new jobs' ids, oldest tick first."""
        ...

    async def latest_tick(self, ctx: QueueCtx, name: str) -> tuple[datetime, str] | None:
        """The newest tick of the schedule `name` enqueued in the log, and its job's id;
        None if it has none."""
        ...

    async def dequeue(
        self, ctx: QueueCtx, queues: Sequence[str], *, lease_duration: timedelta | None = None
    ) -> LeasedJob | None:
        """Lease the tenant's next ready job in `queues`, or return None."""
        ...

    async def dequeue_many(
        self,
        ctx: QueueCtx,
        queues: Sequence[str],
        n: int,
        *,
        lease_duration: timedelta | None = None,
    ) -> list[LeasedJob]:
        """Lease up to `n` ready jobs in dequeue order, in one transaction."""
        ...

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
        ...

    async def ack_complete(
        self, ctx: QueueCtx, lease: LeasedJob, result: bytes | None = None
    ) -> None:
        """Mark the leased job COMPLETED."""
        ...

    async def ack_fail(
        self, ctx: QueueCtx, lease: LeasedJob, error: str, *, retry: bool = True
    ) -> JobStatus:
        """Record a failed attempt; ENQUEUED if a retry was scheduled, else FAILED."""
        ...

    async def settle_many(
        self, ctx: QueueCtx, settlements: Sequence[Settlement]
    ) -> list[JobStatus | QueueError]:
        """Acknowledge many leased jobs of the tenant at once (each a `Completion` or a
        `Failure`), all committed together. Each is fenced on its own: the result at its
        index is the job's status afterwards, or the error refusing it (LeaseLost,
        JobCanceled, JobNotFound), which appended nothing and refuses no other."""
        ...

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
        ...

    async def cancel_job(
        self, ctx: QueueCtx, job_id: str, *, actor: str | None = None
    ) -> JobStatus:
        """Cancel the job unless it is terminal; return its status afterwards. `actor`
        (who asked) is recorded in the `canceled` event."""
        ...

    async def cancel_workflow(
        self, ctx: QueueCtx, job_id: str, *, actor: str | None = None
    ) -> list[str]:
        """Cancel the job and every job that depends on it (`JobMessage.after`),
        directly or through others, in one transaction; return the ids canceled."""
        ...

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
        ...

    async def get_status(self, ctx: QueueCtx, job_id: str) -> JobStatus:
        """The job's current status."""
        ...

    async def get_job(self, ctx: QueueCtx, job_id: str) -> JobInfo:
        """The job's current state (equal to folding its history), in tenant positions."""
        ...

    async def history(self, ctx: QueueCtx, job_id: str) -> list[AnyEvent]:
        """The job's events in log order; each `seq` is a tenant position."""
        ...

    async def reap_expired(self) -> int:
        """Expire every lease, across tenants, whose time has come; return how many."""
        ...

    async def ready_tenants(self, queues: Sequence[str]) -> list[str]:
        """Tenants with at least one job in `queues` that can be leased now."""
        ...

    async def next_run_at(
        self, queues: Sequence[str], tenant_ids: Sequence[str] | None = None
    ) -> datetime | None:
        """The earliest `run_at` of an ENQUEUED job in `queues` (of those tenants)."""
        ...

    async def wait_for_change(self, max_wait: float) -> None:
        """Return soon after a job may have become leasable (an enqueue, retry or
        release, here or in another process sharing the storage), or after `max_wait`
        seconds, whichever comes first."""
        ...

    async def read_events(self, *, after_seq: int = 0, limit: int | None = None) -> list[AnyEvent]:
        """Events of every tenant with log position > `after_seq` (a log position, like
        every `seq` this returns), in log order."""
        ...

    async def projected_jobs(self) -> dict[JobKey, JobInfo]:
        """The live projection: every job's state, keyed by (tenant_id, job_id), in log
        positions (equal to folding `read_events()`)."""
        ...

    async def rebuild_projections(self) -> int:
        """Replace the projection with the fold of the log; return events folded."""
        ...

    async def announce_worker(self, presence: WorkerPresence) -> None:
        """Store a worker's presence record, replacing its previous one (records are
        not events: they live beside the log), and forget records not refreshed for
        `FORGET_AFTER` before `presence.last_seen`."""
        ...

    async def read_workers(self, *, seen_since: datetime) -> list[WorkerPresence]:
        """The presence records refreshed at or after `seen_since`, oldest start first."""
        ...

    def log_reader(self, *, wait_for_own_writes: bool = True) -> LogReader:
        """The stored log, read-only: what the audit tools, the command line and the
        metrics read. Reading it never migrates or writes the log.

        Where positions are given after the commit (PostgreSQL), a read first waits
        until this backend's own events have theirs, so it sees its writes; with
        `wait_for_own_writes=False` it never waits, and an event not yet numbered is
        seen by a later read (for readers that poll, such as metrics)."""
        ...

    def browser(self) -> JobBrowser:
        """The read model the dashboard and the bulk commands list jobs with: paged,
        filtered job lists and per-tenant counts, read in this backend's own way (its
        indexes), with readiness and dequeue order as `dogqueue.core.order` defines them.
        It reads the stored state (no events appended) and lives as long as the backend."""
        ...


@runtime_checkable
class TransactionalEnqueue(Protocol):
    """A backend that can enqueue inside the application's own database transaction
    (PostgreSQL on asyncpg, psycopg 3 or SQLAlchemy connections; SQLite on `sqlite3`)."""

    async def enqueue_in_transaction(
        self,
        connection: object,
        ctx: QueueCtx,
        message: JobMessage,
        *,
        trace_context: dict[str, str] | None = None,
    ) -> str:
        """Enqueue `message` in `connection`'s open transaction on the queue's own
        database: the job exists if and only if that transaction commits. A connection
        of another kind or database, or outside a transaction, is InvalidInput naming
        `connection`."""
        ...
