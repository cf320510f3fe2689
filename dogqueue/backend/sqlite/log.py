"""The SQLite log, read-only: the `LogReader` of a database file (live or archive).

It opens the file with `mode=ro` and `query_only`, never migrates it, and reads logs of
every schema version up to this one as they are (tenant positions are numbered on the
fly in logs older than schema version 3; logs older than 2 have no chain hashes). A log
of a newer schema version is refused. SQLite may create the usual `-wal`/`-shm` side
files of a WAL database; the database file itself is never written. On read-only media
the file is opened immutable (see `readonly`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from dogqueue.backend.kit.rows import from_micros, job_row
from dogqueue.backend.kit.sqlfiles import load_queries
from dogqueue.backend.sqlite.catchup import Tail, tail_of
from dogqueue.backend.sqlite.connection import (
    BUSY_TIMEOUT_MS,
    refuse_foreign,
    refuse_newer,
    translate,
)
from dogqueue.backend.sqlite.readonly import connect_read_only
from dogqueue.backend.sqlite.transaction import edge_rows
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.log.archive import Anchor, ArchiveCut
from dogqueue.log.reader import (
    LogPos,
    LogRecord,
    ProjectionRow,
    TenantPos,
    in_tenant_positions,
    stored_time,
)
from dogqueue.log.stored import stored_event, stored_job

T = TypeVar("T")
#: The first schema version with chain hashes, and the first with tenant positions.
CHAIN_VERSION, TENANT_POSITION_VERSION, DEPENDENCIES_VERSION = 2, 3, 5
STATUS_COUNTS_VERSION = 7
#: The first schema version whose stored chain heads are folded now and then.
FOLDED_HEADS_VERSION = 10
#: The first schema version whose projection tables are a checkpoint (log first).
CHECKPOINT_VERSION = 9


#: The reader's SQL, by name.
LQ = load_queries(__package__, "sql/log.sql")


class SqliteLogReader:
    """A SQLite log file, read-only. Constructing it does no I/O; the connection opens
    on the first read (InvalidInput("db") if the file does not exist)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._conn: sqlite3.Connection | None = None
        self._version = 0
        self._lock = threading.Lock()
        #: (position, events per tenant up to it): where the last page of an old log
        #: (without tenant positions) ended.
        self._counted: tuple[int, dict[str, int]] | None = None

    # -- the connection ----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if not os.path.exists(self.path):
            raise InvalidInput("db", f"no such file: no database at {self.path}")
        try:
            conn = connect_read_only(self.path)
        except sqlite3.Error as error:
            raise translate(error) from error
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")
            self._version = _schema_version(conn, self.path)
        except sqlite3.Error as error:
            conn.close()
            raise translate(error) from error
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @property
    def schema_version(self) -> int:
        """The schema version of the file (0 until the first read)."""
        return self._version

    async def _run(self, action: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                conn = self._connect()
                try:
                    return action(conn)
                except sqlite3.Error as error:
                    raise translate(error) from error

        return await asyncio.to_thread(locked)

    async def _rows(self, name: str, params: tuple[object, ...] = ()) -> list[Any]:
        return await self._run(lambda conn: conn.execute(LQ[name], params).fetchall())

    def _variant(self, name: str) -> str:
        """The query for this file's schema version."""
        if self._version < CHAIN_VERSION and f"{name}_v1" in LQ:
            return f"{name}_v1"
        if self._version < TENANT_POSITION_VERSION and f"{name}_v2" in LQ:
            return f"{name}_v2"
        return name

    async def _ensure_open(self) -> None:
        await self._run(lambda conn: None)

    # -- LogReader ---------------------------------------------------------------------

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Every read inside sees the same committed state, while writers go on."""
        await self._run(lambda conn: conn.execute("BEGIN"))
        try:
            yield
        finally:
            await self._run(lambda conn: conn.in_transaction and conn.execute("ROLLBACK"))

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        """Stored events with position > `after`, in position order, undecoded."""
        await self._ensure_open()
        params = (after, -1 if limit is None else limit)
        if self._version >= TENANT_POSITION_VERSION:
            rows = await self._rows("records", params)
            return [_record(row) for row in rows]
        # An older log has no tenant positions: count them. Paging forward continues
        # from the counts of the page before, so reading the whole log stays linear.
        rows = await self._rows(self._variant("records"), params)
        if self._counted is not None and self._counted[0] == after:
            counts = dict(self._counted[1])
        else:
            counted = await self._rows("tenant_counts", (after,))
            counts = {str(tenant): int(n) for tenant, n in counted}
        records = []
        for row in rows:
            tenant = str(row[1])
            counts[tenant] = counts.get(tenant, 0) + 1
            records.append(_record((*row, counts[tenant])))
        if records:
            self._counted = (records[-1].pos, counts)
        return records

    async def unsealed(self) -> list[LogRecord]:
        """Always empty: SQLite gives each event its position when it commits."""
        return []

    async def last_position(self) -> int:
        """The highest position given so far, archived ones included."""
        await self._ensure_open()
        rows = await self._rows(self._variant("last_position"))
        return int(rows[0][0])

    async def events(self, *, after: int = 0, limit: int | None = None) -> list[AnyEvent]:
        """Decoded events with position > `after`; `seq` is the log position."""
        rows = await self._rows("events", (after, -1 if limit is None else limit))
        return [stored_event(data, seq) for seq, data in rows]

    async def tenant_events(self, tenant_id: str) -> list[AnyEvent]:
        """The tenant's events in log order, `seq` = tenant position."""
        await self._ensure_open()
        rows = await self._rows(self._variant("tenant_events"), (tenant_id,))
        return [stored_event(data, tpos) for tpos, data in rows]

    async def history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        """The job's events in log order, `seq` = tenant position."""
        await self._ensure_open()
        rows = await self._rows(self._variant("history"), (tenant_id, job_id))
        return [stored_event(data, tpos) for tpos, data in rows]

    async def _tail(self) -> Tail | None:
        """The events after the checkpoint folded onto its rows (None: the file's
        projection tables cover its whole log, as before schema version 9)."""
        await self._ensure_open()
        if self._version < CHECKPOINT_VERSION:
            return None
        tail = await self._run(tail_of)
        return tail if tail.events else None

    async def jobs(self, tenant_id: str | None = None) -> list[JobInfo]:
        """The projection (all of it in log positions, or one tenant's in its tenant
        positions), in enqueue order: the checkpoint with the events after it folded on."""
        await self._ensure_open()
        tail = await self._tail()
        changed = {} if tail is None else tail.changed
        if tenant_id is None:
            rows = await self._rows("all_jobs")
            jobs = {
                (tenant, job): stored_job(state, f"job {job!r} of {tenant!r}")
                for state, tenant, job in rows
            }
            jobs.update({key: job for key, (_, job) in changed.items()})
            return sorted(jobs.values(), key=lambda job: job.enqueue_seq)
        rows = await self._rows(self._variant("jobs_of_tenant"), (tenant_id,))
        found = {
            job: in_tenant_positions(stored_job(state, f"job {job!r} of {tenant_id!r}"), tpos)
            for state, tpos, job in rows
        }
        for (tenant, job_id), (_, job) in changed.items():
            if tenant == tenant_id:
                [(tpos,)] = await self._rows("job_enqueue_tpos", (tenant_id, job_id))
                found[job_id] = in_tenant_positions(job, tpos)
        return sorted(found.values(), key=lambda job: job.enqueue_seq)

    async def projection_rows(self) -> list[ProjectionRow]:
        """Every projection row, undecoded, in enqueue order: the checkpoint's, with the
        rows of the jobs the events after it changed as those events leave them."""
        await self._ensure_open()
        rows = {(row[1], row[2]): row for row in await self._rows("projection_rows")}
        tail = await self._tail()
        if tail is not None:
            rows.update({key: job_row(job) for key, (_, job) in tail.changed.items()})
        return [
            ProjectionRow(
                tenant_id=tenant,
                job_id=job,
                status=status,
                queue=queue,
                priority=priority,
                job_type=job_type,
                run_at=stored_time(run_at, from_micros),
                lease_expires_at=stored_time(lease_expires_at, from_micros),
                idempotency_key=key,
                version=version,
                enqueue_seq=enqueue_seq,
                enqueue_pos=enqueue_seq,  # a SQLite enqueue_seq is the log position
                state=state,
            )
            for (
                enqueue_seq,
                tenant,
                job,
                status,
                queue,
                priority,
                job_type,
                run_at,
                lease_expires_at,
                key,
                version,
                state,
            ) in sorted(rows.values(), key=lambda row: int(row[0]))
        ]

    async def status_counts(self) -> dict[tuple[str, str], int] | None:
        """The stored job counts (none before schema version 7), moved by the events
        after the checkpoint."""
        await self._ensure_open()
        if self._version < STATUS_COUNTS_VERSION:
            return None
        counts = {(str(t), str(s)): n for t, s, n in await self._rows("status_counts")}
        tail = await self._tail()
        for stored, job in [] if tail is None else tail.changed.values():
            if stored is not None:
                left = (stored.tenant_id, stored.status.value)
                counts[left] = counts.get(left, 0) - 1
            entered = (job.tenant_id, job.status.value)
            counts[entered] = counts.get(entered, 0) + 1
        return {key: n for key, n in sorted(counts.items()) if n != 0}

    async def dependencies(self) -> list[tuple[str, str, str]]:
        """The stored dependency index (none before schema version 5), with the edges
        of the jobs enqueued after the checkpoint."""
        await self._ensure_open()
        if self._version < DEPENDENCIES_VERSION:
            return []
        rows = await self._rows("dependencies_by_child")
        tail = await self._tail()
        for stored, job in [] if tail is None else tail.changed.values():
            if stored is None:
                rows.extend(edge_rows(job))
        rows.sort(key=lambda row: (row[0], row[2], row[1]))
        return [(str(t), str(p), str(c)) for t, p, _, c in rows]

    async def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        """The head (position, hash) of each tenant's chain: the stored heads, moved to
        the tenants' last events after the position they were folded at."""
        if not await self._chained():
            return {}
        query = "folded_chain_heads" if self._version >= FOLDED_HEADS_VERSION else "chain_heads"
        return {str(t): (int(s), bytes(h)) for t, s, h in await self._rows(query)}

    async def anchors(self) -> list[Anchor]:
        """Hashes of moved events that remaining events link to, in position order."""
        if not await self._chained():
            return []
        return [Anchor(int(s), str(t), bytes(h)) for s, t, h in await self._rows("chain_anchors")]

    async def archived_ranges(self) -> list[tuple[int, int]]:
        """Inclusive position ranges moved out by archival, in order."""
        if not await self._chained():
            return []
        return [(int(a), int(b)) for a, b in await self._rows("archived_ranges")]

    async def archive_cuts(self) -> list[ArchiveCut]:
        """Every archival this log records, oldest first."""
        if not await self._chained():
            return []
        return [ArchiveCut(*row) for row in await self._rows("archive_cuts")]

    async def integrity_problems(self) -> list[str]:
        """What SQLite's integrity check reports (empty when the file is sound)."""
        try:
            lines = [str(row[0]) for row in await self._rows("integrity_check")]
        except StorageError as error:
            return [str(error)]
        return [] if lines == ["ok"] else lines

    async def close(self) -> None:
        """Close the connection (a later read opens it again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def _chained(self) -> bool:
        await self._ensure_open()
        return self._version >= CHAIN_VERSION


def _record(row: tuple[Any, ...]) -> LogRecord:
    seq, tenant, job, version, kind, data, digest, tpos = row
    return LogRecord(
        LogPos(int(seq)),
        str(tenant),
        str(job),
        int(version),
        str(kind),
        bytes(data),
        None if digest is None else bytes(digest),
        TenantPos(0 if tpos is None else int(tpos)),
    )


def _schema_version(conn: sqlite3.Connection, path: str) -> int:
    """The file's schema version; StorageError for a newer one or a foreign file."""
    if not conn.execute(LQ["has_schema_version"]).fetchone()[0]:
        raise StorageError("not a dogqueue database: it has no schema_version table")
    refuse_foreign(conn, path, None)
    row = conn.execute(LQ["schema_version"]).fetchone()
    version = 0 if row is None else row[0]
    if not isinstance(version, int):
        raise StorageError(f"corrupt database: schema version {version!r} is not an integer")
    refuse_newer(version)
    if version < 1:
        raise StorageError("not a dogqueue database: its schema version is unset")
    return version
