"""Reading a log as it is stored: the protocol every backend implements for the audit
tools, the CLI and the metrics reader, and the records it yields.

Positions: `pos` is the log's commit-ordered position, dense for an honest log (SQLite
and memory: the event's `seq`; PostgreSQL: assigned by its sequencer). `tpos` is the
position within one tenant's events, dense per tenant, and the only position a tenant is
ever shown. Reading never migrates or writes the log.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo


class LogRecord(NamedTuple):
    """One stored event as the log keeps it: identity columns, bytes and chain hash.

    `seq` is the log position (`pos`); `hash` is None where the log has not chained the
    event yet (PostgreSQL's unsealed tail) or never did (a log older than the chain)."""

    seq: int
    tenant_id: str
    job_id: str
    version: int
    type: str
    data: bytes
    hash: bytes | None


class Anchor(NamedTuple):
    """The hash of an event moved out by archival that a remaining event links to."""

    seq: int
    tenant_id: str
    hash: bytes


class ArchiveCut(NamedTuple):
    """One archival, as the live log records it."""

    id: int
    archived_at: int
    cut_before: int
    archive: str
    jobs: int
    events: int
    head_hash: bytes
    archive_events: int
    archive_digest: bytes


@runtime_checkable
class LogReader(Protocol):
    """A stored log, read-only. Every backend returns one from `log_reader()`."""

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        """Stored events with position > `after`, in position order, undecoded; at most
        `limit` of them. Events not yet given a position are not included."""
        ...

    async def unsealed(self) -> list[LogRecord]:
        """Committed events that have no position yet (always empty on SQLite and
        memory), in commit order as far as the log knows it."""
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
        """The stored projection (of one tenant), in enqueue order."""
        ...

    async def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        """The stored head (position, hash) of each tenant's chain."""
        ...

    async def anchors(self) -> list[Anchor]:
        """Hashes of moved events that remaining events link to, in position order."""
        ...

    async def archived_ranges(self) -> list[tuple[int, int]]:
        """Inclusive position ranges moved out by archival, in order."""
        ...

    async def archive_cuts(self) -> list[ArchiveCut]:
        """Every archival this log records, oldest first."""
        ...

    async def integrity_problems(self) -> list[str]:
        """What the storage's own integrity check reports (empty when sound)."""
        ...

    async def close(self) -> None:
        """Release what the reader holds (a reader from a backend leaves it open)."""
        ...
