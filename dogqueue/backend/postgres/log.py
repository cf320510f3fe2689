"""Reading a PostgreSQL queue's log: positions, hashes and the projection, read-only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec

from dogqueue.backend.postgres.migrate import quote, schema_version
from dogqueue.backend.postgres.queries import SCHEMA_VERSION, Q
from dogqueue.core.codec import decode_event, decode_job
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.log.reader import Anchor, ArchiveCut, LogRecord


def decode_job_at(state: bytes, pos: int | None = None) -> JobInfo:
    """A stored job state; with `pos`, its enqueue position is the log position of its
    enqueued event, as folding the log by position gives it."""
    job = decode_job(bytes(state))
    return job if pos is None else msgspec.structs.replace(job, enqueue_seq=int(pos))


class PostgresLog:
    """The LogReader of a PostgreSQL queue. Reads only: it never migrates or writes,
    except that a reader given `before_read` (the backend's sequencer) runs it first so
    that reads see the caller's own writes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        before_read: Callable[[], Awaitable[int]] | None = None,
        owns_pool: bool = False,
    ) -> None:
        self._pool = pool
        self._before_read = before_read
        self._owns_pool = owns_pool

    async def _fetch(self, name: str, *args: Any) -> list[Any]:
        if self._before_read is not None:
            await self._before_read()
        async with self._pool.acquire() as conn:
            rows: list[Any] = await conn.fetch(Q[name], *args)
            return rows

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        rows = await self._fetch("records", after, limit)
        return [
            LogRecord(int(p), str(t), str(j), int(v), str(k), bytes(d), bytes(h))
            for p, t, j, v, k, d, h in rows
        ]

    async def unsealed(self) -> list[LogRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(Q["unsealed"])
        return [
            LogRecord(0, str(t), str(j), int(v), str(k), bytes(d), None)
            for _, t, j, v, k, d in rows
        ]

    async def last_position(self) -> int:
        rows = await self._fetch("last_pos")
        return int(rows[0][0]) if rows else 0

    async def events(self, *, after: int = 0, limit: int | None = None) -> list[AnyEvent]:
        rows = await self._fetch("events_after", after, limit)
        return [decode_event(bytes(data), int(pos)) for pos, data in rows]

    async def tenant_events(self, tenant_id: str) -> list[AnyEvent]:
        rows = await self._fetch("tenant_events", tenant_id)
        return [decode_event(bytes(data), int(tpos)) for tpos, data in rows]

    async def history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        rows = await self._fetch("history", tenant_id, job_id)
        return [decode_event(bytes(data), int(tpos)) for tpos, data in rows]

    async def jobs(self, tenant_id: str | None = None) -> list[JobInfo]:
        rows = (
            await self._fetch("all_jobs")
            if tenant_id is None
            else await self._fetch("jobs_of_tenant", tenant_id)
        )
        return [decode_job_at(state, pos) for state, pos in rows]

    async def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        rows = await self._fetch("chain_heads")
        return {str(t): (int(p), bytes(h)) for t, p, h in rows}

    async def anchors(self) -> list[Anchor]:
        return []  # archival is not offered on PostgreSQL

    async def archived_ranges(self) -> list[tuple[int, int]]:
        return []

    async def archive_cuts(self) -> list[ArchiveCut]:
        return []

    async def integrity_problems(self) -> list[str]:
        return []

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.close()


async def open_log(dsn: str, schema: str = "dogqueue") -> PostgresLog:
    """A read-only reader of an existing queue schema; refuses a missing or newer one.
    It runs no migration and no sequencer step."""
    try:
        conn = await asyncpg.connect(dsn)
        try:
            version = await schema_version(conn, schema)
        finally:
            await conn.close()
        if version is None:
            raise StorageError(f"no dogqueue queue in schema {schema!r}")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"queue schema {schema!r} is at version {version}, newer than this dogqueue"
            )
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=2,
            server_settings={
                "search_path": quote(schema),
                "default_transaction_read_only": "on",
            },
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise StorageError(f"cannot read PostgreSQL queue {schema!r}: {error}") from error
    return PostgresLog(pool, owns_pool=True)
