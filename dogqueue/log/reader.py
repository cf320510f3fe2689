"""Reading a log as it is stored: the protocol every backend implements for the audit
tools, the CLI and the metrics reader, and the records it yields.

Three numbers say where an event is, and each has its own name and type:
- `LogPos`, the **log position** (`pos`): commit-ordered over the whole log, dense for an
  honest log (SQLite and memory: the number the writer gave; PostgreSQL: given by its
  sequencer after the commit). The chain, `verify`, checkpoints and archival use it.
- `TenantPos`, the **tenant position** (`tpos`): dense within one tenant's events, and the
  only position a tenant is ever shown.
- `WriterSeq`, the **writer number**: what a PostgreSQL writer numbered an event at its
  commit, with gaps and not in commit order; it only orders the unsealed tail (events not
  yet given a `pos`). On SQLite and memory it is the log position.

Events (`AnyEvent.seq`) and jobs (`JobInfo.enqueue_seq`) carry a log position from the
global reads and a tenant position from the tenant-scoped ones, as each method says.
Reading never migrates or writes the log.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import NamedTuple, NewType, Protocol, runtime_checkable

import msgspec

from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo

#: A position in the whole log, commit-ordered (see the module docstring).
LogPos = NewType("LogPos", int)
#: A position among one tenant's events, 1, 2, 3, ...
TenantPos = NewType("TenantPos", int)
#: The number a writer gave an event at its commit (PostgreSQL: gaps, not commit order).
WriterSeq = NewType("WriterSeq", int)


class LogRecord(NamedTuple):
    """One stored event as the log keeps it: identity columns, bytes and chain hash.

    `pos` is its log position (0 for an unsealed event, which has none yet); `hash` is
    None where the log has not chained the event yet (PostgreSQL's unsealed tail) or never
    did (a log older than the chain). `tpos` is its tenant position (0 where none is given
    yet). `writer_seq` is the writer's number, given for unsealed events only (0 else).
    """

    pos: LogPos
    tenant_id: str
    job_id: str
    version: int
    type: str
    data: bytes
    hash: bytes | None
    tpos: TenantPos = TenantPos(0)
    writer_seq: WriterSeq = WriterSeq(0)


class ProjectionRow(NamedTuple):
    """One stored projection row as the log keeps it: every column a read path searches
    on (dequeue, leases, keys, tenant reads), and the job's state bytes.

    Columns hold what is stored, even where it has the wrong type (a tampered file), so
    the verifier can compare each with the fold. `enqueue_pos` is the log position of the
    event the row's enqueue column names (None if it names none); `enqueue_seq` is that
    column as stored: a log position on SQLite and memory, the writer's number
    (`WriterSeq`) on PostgreSQL."""

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

    Scopes: `records`, `events`, `jobs()` and the chain use log positions (`LogPos`);
    the tenant-scoped reads (`tenant_events`, `history`, `jobs(tenant_id)`) use the
    tenant's positions (`TenantPos`), so the `seq` of their events and the `enqueue_seq`
    of their jobs reveal nothing about other tenants."""

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
        memory), in commit order as far as the log knows it. Their `writer_seq` is the
        number the writer gave them; `pos` and `tpos` are 0 and `hash` None."""
        ...

    async def last_position(self) -> int:
        """The highest log position given so far (0 for an empty log)."""
        ...

    async def events(self, *, after: int = 0, limit: int | None = None) -> list[AnyEvent]:
        """Decoded events with log position > `after`; each event's `seq` is its log
        position."""
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
    """The job as its tenant sees it: its `enqueue_seq`, stored as a log position, is
    rewritten to the tenant position of its enqueued event (unchanged when that event is
    not in the log). Every tenant-scoped read returns jobs through this."""
    if enqueue_tpos is None or job.enqueue_seq == enqueue_tpos:
        return job
    return msgspec.structs.replace(job, enqueue_seq=int(enqueue_tpos))
