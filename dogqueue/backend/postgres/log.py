"""Reading a PostgreSQL queue's log: positions, hashes and the projection, read-only."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import msgspec

from dogqueue.backend.kit.rows import from_micros
from dogqueue.backend.postgres.migrate import quote, schema_version
from dogqueue.backend.postgres.queries import SCHEMA_VERSION, Q
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.log.reader import (
    LogPos,
    LogRecord,
    ProjectionRow,
    TenantPos,
    WriterSeq,
    stored_time,
)
from dogqueue.log.stored import stored_event, stored_job


def decode_job_at(state: bytes, pos: int | None = None, which: str = "a job") -> JobInfo:
    """A stored job state (of the row described by `which`); with `pos`, its enqueue
    position is the log position of its enqueued event, as folding the log by position
    gives it."""
    job = stored_job(state, which)
    return job if pos is None else msgspec.structs.replace(job, enqueue_seq=int(pos))


class PostgresLog:
    """The LogReader of a PostgreSQL queue. Reads only: it never migrates or writes.
    Given a backend's pool and `before_read` (its sequencer), reads see the caller's own
    writes; given a DSN instead, it opens a read-only pool of its own on first use and
    refuses a schema that is missing or newer than this dogqueue."""

    def __init__(
        self,
        pool: asyncpg.Pool | None = None,
        *,
        before_read: Callable[[], Awaitable[int]] | None = None,
        dsn: str | None = None,
        schema: str = "dogqueue",
    ) -> None:
        self._pool = pool
        self._before_read = before_read
        self._dsn = dsn
        self._schema = schema
        self._owns_pool = pool is None
        self._snapshot: asyncpg.Connection | None = None

    async def _connected(self) -> asyncpg.Pool:
        if self._pool is None:
            if self._dsn is None:
                raise StorageError("the log reader has neither a pool nor a DSN")
            self._pool = await _read_only_pool(self._dsn, self._schema)
        return self._pool

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Every read inside sees one committed state (a REPEATABLE READ transaction)."""
        if self._before_read is not None:
            await self._before_read()
        pool = await self._connected()
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            self._snapshot = conn
            try:
                yield
            finally:
                self._snapshot = None

    async def _fetch(self, name: str, *args: Any) -> list[Any]:
        try:
            return await self._fetch_raw(name, *args)
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ) as error:
            raise StorageError(f"PostgreSQL: {error}") from error

    async def _fetch_raw(self, name: str, *args: Any) -> list[Any]:
        if self._snapshot is not None:
            rows: list[Any] = await self._snapshot.fetch(Q[name], *args)
            return rows
        if self._before_read is not None:
            await self._before_read()
        pool = await self._connected()
        async with pool.acquire() as conn:
            rows = await conn.fetch(Q[name], *args)
            return rows

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        rows = await self._fetch("records", after, limit)
        return [
            LogRecord(
                LogPos(int(p)),
                str(t),
                str(j),
                int(v),
                str(k),
                bytes(d),
                bytes(h),
                TenantPos(int(tp)),
            )
            for p, t, j, v, k, d, h, tp in rows
        ]

    async def unsealed(self) -> list[LogRecord]:
        rows = await self._fetch("unsealed")
        return [
            LogRecord(
                LogPos(0),
                str(t),
                str(j),
                int(v),
                str(k),
                bytes(d),
                None,
                writer_seq=WriterSeq(int(seq)),
            )
            for seq, t, j, v, k, d in rows
        ]

    async def last_position(self) -> int:
        rows = await self._fetch("last_pos")
        return int(rows[0][0]) if rows else 0

    async def events(self, *, after: int = 0, limit: int | None = None) -> list[AnyEvent]:
        rows = await self._fetch("events_after", after, limit)
        return [stored_event(data, int(pos)) for pos, data in rows]

    async def tenant_events(self, tenant_id: str) -> list[AnyEvent]:
        rows = await self._fetch("tenant_events", tenant_id)
        return [stored_event(data, int(tpos)) for tpos, data in rows]

    async def history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        rows = await self._fetch("history", tenant_id, job_id)
        return [stored_event(data, int(tpos)) for tpos, data in rows]

    async def jobs(self, tenant_id: str | None = None) -> list[JobInfo]:
        rows = (
            await self._fetch("all_jobs")
            if tenant_id is None
            else await self._fetch("jobs_of_tenant", tenant_id)
        )
        return [
            decode_job_at(state, pos, f"job {job!r} of {tenant!r}")
            for state, pos, tenant, job in rows
        ]

    async def projection_rows(self) -> list[ProjectionRow]:
        """Every stored projection row, undecoded, in enqueue order; `enqueue_pos` is
        the log position of the event its `enqueue_seq` names."""
        return [
            ProjectionRow(
                tenant_id=row["tenant_id"],
                job_id=row["job_id"],
                status=row["status"],
                queue=row["queue"],
                priority=row["priority"],
                job_type=row["job_type"],
                run_at=stored_time(row["run_at"], from_micros),
                lease_expires_at=stored_time(row["lease_expires_at"], from_micros),
                idempotency_key=row["idempotency_key"],
                version=row["version"],
                enqueue_seq=row["enqueue_seq"],
                enqueue_pos=row["pos"],
                state=bytes(row["state"]),
            )
            for row in await self._fetch("projection_rows")
        ]

    async def status_counts(self) -> dict[tuple[str, str], int] | None:
        return None  # counted from the jobs themselves (an index on status)

    async def dependencies(self) -> list[tuple[str, str, str]]:
        if not (await self._fetch("has_dependencies"))[0][0]:
            return []  # a schema written before workflows, read as it is
        return [(str(t), str(p), str(c)) for t, p, c in await self._fetch("dependencies")]

    async def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        rows = await self._fetch("chain_heads")
        return {str(t): (int(p), bytes(h)) for t, p, h in rows}

    async def close(self) -> None:
        if self._owns_pool and self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _read_only_pool(dsn: str, schema: str) -> asyncpg.Pool:
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
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=2,
            server_settings={
                "search_path": quote(schema),
                "default_transaction_read_only": "on",
            },
        )
        return pool
    except (
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
    ) as error:
        raise StorageError(f"cannot read PostgreSQL queue {schema!r}: {error}") from error


async def open_log(dsn: str, schema: str = "dogqueue") -> PostgresLog:
    """A read-only reader of an existing queue schema, connected now; refuses a missing
    or newer one. It runs no migration and no sequencer step."""
    log = PostgresLog(dsn=dsn, schema=schema)
    await log._connected()
    return log
