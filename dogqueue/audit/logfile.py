"""Reading a SQLite log file for auditing: events with their chain hashes, the
projection, and the archival records. Synchronous: the command line has no event loop."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, NamedTuple

from dogqueue.backend.sqlite.connection import connect, migrate, translate
from dogqueue.core.codec import decode_event, decode_job
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo


def _load_queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("audit.sql").read_text("utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


#: The audit tools' SQL, by name.
AQ = _load_queries()


class LogRecord(NamedTuple):
    """One stored event as the log keeps it: identity columns, bytes and chain hash."""

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


class LogFile:
    """An open SQLite log (live or archive), upgraded to this version's schema."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.path = os.fspath(path)
        if not create and not os.path.exists(self.path):
            raise InvalidInput("db", f"no such file: {self.path}")
        try:
            self.conn = connect(self.path, "NORMAL")
            migrate(self.conn)
        except sqlite3.DatabaseError as error:
            raise translate(error) from error

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> LogFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees the same committed state, while writers go on."""
        try:
            self.conn.execute("BEGIN")
        except sqlite3.Error as error:
            raise translate(error) from error
        try:
            yield
        finally:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def _rows(self, name: str, params: tuple[object, ...] = ()) -> Iterator[Any]:
        try:
            yield from self.conn.execute(AQ[name], params)
        except sqlite3.Error as error:
            raise translate(error) from error

    # -- the log -----------------------------------------------------------------------

    def records(self) -> Iterator[LogRecord]:
        """Every stored event, in log order, undecoded."""
        for row in self._rows("records"):
            seq, tenant, job, version, kind, data, digest = row
            yield LogRecord(
                int(seq),
                str(tenant),
                str(job),
                int(version),
                str(kind),
                bytes(data),
                None if digest is None else bytes(digest),
            )

    def event_count(self) -> tuple[int, int]:
        """(events stored, highest seq)."""
        count, last = next(self._rows("event_count"))
        return int(count), int(last)

    def events(self) -> Iterator[AnyEvent]:
        """Every event, decoded, in log order."""
        for seq, data in self._rows("all_events"):
            yield decode_event(data, seq)

    def tenant_events(self, tenant_id: str) -> list[AnyEvent]:
        """The tenant's events in log order."""
        rows = self._rows("tenant_events", (tenant_id,))
        return [decode_event(data, seq) for seq, data in rows]

    def history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        """The job's events in log order (empty if the log does not hold it)."""
        rows = self._rows("history", (tenant_id, job_id))
        return [decode_event(data, seq) for seq, data in rows]

    # -- the projection ----------------------------------------------------------------

    def jobs(self, tenant_id: str | None = None) -> list[JobInfo]:
        """The projected jobs (of one tenant), in enqueue order."""
        rows = (
            self._rows("all_jobs")
            if tenant_id is None
            else self._rows("jobs_of_tenant", (tenant_id,))
        )
        return [decode_job(row[0]) for row in rows]

    # -- chain and archival ------------------------------------------------------------

    def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        """The stored head (seq, hash) of each tenant's chain."""
        return {str(t): (int(s), bytes(h)) for t, s, h in self._rows("chain_heads")}

    def anchors(self) -> list[Anchor]:
        """Hashes of moved events that remaining events link to, in log order."""
        return [Anchor(int(s), str(t), bytes(h)) for s, t, h in self._rows("chain_anchors")]

    def archived_ranges(self) -> list[tuple[int, int]]:
        """Inclusive seq ranges moved out by archival, in order."""
        return [(int(a), int(b)) for a, b in self._rows("archived_ranges")]

    def archive_cuts(self) -> list[ArchiveCut]:
        """Every archival this log records, oldest first."""
        return [ArchiveCut(*row) for row in self._rows("archive_cuts")]

    def is_archive(self) -> bool:
        """True for a file written by archival: it records cuts but no moved ranges."""
        return bool(self.archive_cuts()) and not self.archived_ranges()

    def integrity_problems(self) -> list[str]:
        """What SQLite's integrity check reports (empty when the file is sound)."""
        try:
            lines = [str(row[0]) for row in self._rows("integrity_check")]
        except StorageError as error:
            return [str(error)]
        return [] if lines == ["ok"] else lines
