"""Reading a log as it is stored: the protocol every backend implements for the audit
tools, the CLI and the metrics reader, and the records it yields.

Positions: `pos` is the log's commit-ordered position, dense for an honest log (SQLite
and memory: the event's `seq`; PostgreSQL: assigned by its sequencer). `tpos` is the
position within one tenant's events, dense per tenant, and the only position a tenant is
ever shown. Reading never migrates or writes the log.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable

import msgspec

from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo


class LogRecord(NamedTuple):
    """One stored event as the log keeps it: identity columns, bytes and chain hash.

    `seq` is the log position (`pos`); `hash` is None where the log has not chained the
    event yet (PostgreSQL's unsealed tail) or never did (a log older than the chain).
    `tpos` is the event's position among its tenant's events (0 where none is given yet).
    """

    seq: int
    tenant_id: str
    job_id: str
    version: int
    type: str
    data: bytes
    hash: bytes | None
    tpos: int = 0


class ProjectionRow(NamedTuple):
    """One stored projection row as the log keeps it: every column a read path searches
    on (dequeue, leases, keys, tenant reads), and the job's state bytes.

    Columns hold what is stored, even where it has the wrong type (a tampered file), so
    the verifier can compare each with the fold. `enqueue_pos` is the log position of the
    event the row's enqueue column names (None if it names none); `enqueue_seq` is that
    column as stored."""

    tenant_id: object
    job_id: object
    status: object
    queue: object
    priority: object
    job_type: object
    run_at: object
    lease_expires_at: object
    idempotency_key: object
    version: object
    enqueue_seq: object
    enqueue_pos: object
    state: object


#: The columns of a `ProjectionRow` that must equal the fold's, in the order checked.
PROJECTED_COLUMNS = (
    "tenant_id",
    "job_id",
    "status",
    "queue",
    "priority",
    "job_type",
    "run_at",
    "lease_expires_at",
    "idempotency_key",
    "version",
    "enqueue_pos",
)


def projected_columns(job: JobInfo) -> dict[str, object]:
    """The column values a projection row of `job` (folded, positions of the log) holds."""
    message = job.message
    return {
        "tenant_id": job.tenant_id,
        "job_id": job.job_id,
        "status": job.status.value,
        "queue": message.queue,
        "priority": int(message.priority),
        "job_type": message.job_type,
        "run_at": job.run_at,
        "lease_expires_at": job.lease_expires_at,
        "idempotency_key": message.idempotency_key,
        "version": job.version,
        "enqueue_pos": job.enqueue_seq,
    }


def stored_time(value: object, from_micros: Callable[[int], datetime]) -> object:
    """A stored time column as a datetime; a value that is not one stays as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return from_micros(value)
        except (OverflowError, ValueError):
            return value
    return value


@runtime_checkable
class LogReader(Protocol):
    """A stored log, read-only. Every backend returns one from `log_reader()`. Archival
    and a storage integrity check are optional capabilities (`dogqueue.log.archive`).

    Scopes: `records`, `events`, `jobs()` and the chain use log positions (`pos`); the
    tenant-scoped reads (`tenant_events`, `history`, `jobs(tenant_id)`) use the tenant's
    positions, so the `seq` of their events and the `enqueue_seq` of their jobs reveal
    nothing about other tenants."""

    def snapshot(self) -> AbstractAsyncContextManager[None]:
        """Every read inside `async with log.snapshot():` sees one committed state of
        the log, while writers go on."""
        ...

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        """Stored events with position > `after`, in position order, undecoded; at most
        `limit` of them. Events not yet given a position are not included."""
        ...

    async def unsealed(self) -> list[LogRecord]:
        """Committed events that have no position yet (always empty on SQLite and
        memory), in commit order as far as the log knows it. Their `seq` is the number
        the writer gave them (not a position), `hash` None and `tpos` 0."""
        ...

    async def last_position(self) -> int:
        """The highest position given so far (0 for an empty log)."""
        ...

    async def events(self, *, after: int = 0, limit: int | None = None) -> list[AnyEvent]:
        """Decoded events with position > `after`; each event's `seq` is its position."""
        ...

    async def tenant_events(self, tenant_id: str) -> list[AnyEvent]:
        """The tenant's events in log order; each event's `seq` is its tenant position."""
        ...

    async def history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        """The job's events in log order, `seq` = tenant position (empty if unknown)."""
        ...

    async def jobs(self, tenant_id: str | None = None) -> list[JobInfo]:
        """The stored projection, in enqueue order: every job with `enqueue_seq` a log
        position, or one tenant's jobs with `enqueue_seq` a tenant position."""
        ...

    async def projection_rows(self) -> list[ProjectionRow]:
        """Every stored projection row, undecoded, in enqueue order."""
        ...

    async def status_counts(self) -> dict[tuple[str, str], int] | None:
        """The stored number of jobs of each (tenant, status), where the log keeps such
        counts (SQLite, schema 7 on); None where it keeps none."""
        ...

    async def dependencies(self) -> list[tuple[str, str, str]]:
        """The stored dependency index: (tenant, parent, child) for every parent each
        job's `after` names (empty for a log written before workflows)."""
        ...

    async def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        """The stored head (position, hash) of each tenant's chain."""
        ...

    async def close(self) -> None:
        """Release what the reader holds (a reader from a backend leaves it open)."""
        ...


def in_tenant_positions(job: JobInfo, enqueue_tpos: int | None) -> JobInfo:
    """The job as its tenant sees it: `enqueue_seq` is the tenant position of its
    enqueued event (unchanged when that event is not in the log)."""
    if enqueue_tpos is None or job.enqueue_seq == enqueue_tpos:
        return job
    return msgspec.structs.replace(job, enqueue_seq=int(enqueue_tpos))
