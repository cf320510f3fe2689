"""Archival and the storage's own integrity check: optional capabilities of a stored log.

A log that can move finished jobs out to an archive (SQLite, Redis) also reads what archival
left behind (`ArchiveReader`); a log whose storage checks itself (SQLite's
`integrity_check`) reports it (`IntegrityChecker`). Readers without them are read as a
log that never archived and whose storage reports nothing: the functions below give
that answer, so `verify`, checkpoints and the CLI ask every log the same way.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable


class Anchor(NamedTuple):
    """The hash of an event moved out by archival that a remaining event links to, at
    its log position `pos`."""

    pos: int
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
class ArchiveReader(Protocol):
    """What archival left in a log: the capability of a LogReader whose storage archives."""

    async def anchors(self) -> list[Anchor]:
        """Hashes of moved events that remaining events link to, in position order."""
        ...

    async def archived_ranges(self) -> list[tuple[int, int]]:
        """Inclusive position ranges moved out by archival, in order."""
        ...

    async def archive_cuts(self) -> list[ArchiveCut]:
        """Every archival this log records, oldest first."""
        ...


@runtime_checkable
class IntegrityChecker(Protocol):
    """The capability of a LogReader whose storage can check its own integrity."""

    async def integrity_problems(self) -> list[str]:
        """What the storage's own integrity check reports (empty when sound)."""
        ...


async def anchors(log: object) -> list[Anchor]:
    """The log's anchors; none for a log that cannot archive."""
    return await log.anchors() if isinstance(log, ArchiveReader) else []


async def archived_ranges(log: object) -> list[tuple[int, int]]:
    """The position ranges the log moved out; none for a log that cannot archive."""
    return await log.archived_ranges() if isinstance(log, ArchiveReader) else []


async def archive_cuts(log: object) -> list[ArchiveCut]:
    """The archivals the log records; none for a log that cannot archive."""
    return await log.archive_cuts() if isinstance(log, ArchiveReader) else []


async def integrity_problems(log: object) -> list[str]:
    """What the log's storage reports about itself; nothing where it cannot check."""
    return await log.integrity_problems() if isinstance(log, IntegrityChecker) else []
