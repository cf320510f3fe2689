"""`adapter.enqueue_in_transaction` on the real server with each driver an application
may hold: asyncpg, psycopg 3, and SQLAlchemy's AsyncConnection on either. A committed
enqueue exists and runs; a rolled-back one never existed; a connection of the wrong kind
or database, or outside a transaction, is refused naming `connection`."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from dogqueue import InvalidInput, QueueAdapter, QueueCtx, StorageError, Worker
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.migrate import channel
from dogqueue.backend.sqlite import SqliteBackend
from tests.runtime.helpers import ALL_JOBS, PATIENCE_SECONDS, Echo, Probe, within

pytestmark = pytest.mark.postgres

SHOP = QueueCtx("shop")
DRIVERS = ["asyncpg", "psycopg", "sqlalchemy+asyncpg", "sqlalchemy+psycopg"]


class RolledBack(Exception):
    """Raised inside the application's transaction to roll it back."""


@asynccontextmanager
async def app_transaction(driver: str, dsn: str) -> AsyncIterator[Any]:
    """A connection of `driver` inside an open transaction, with the application's own
    `orders` table; committed on a clean exit, rolled back on an exception."""
    if driver == "asyncpg":
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("CREATE TEMP TABLE orders (item text)")
                yield conn
        finally:
            await conn.close()
    elif driver == "psycopg":
        async with await psycopg.AsyncConnection.connect(dsn) as pconn, pconn.transaction():
            await pconn.execute("CREATE TEMP TABLE orders (item text)")
            yield pconn
    else:
        engine = create_async_engine(dsn.replace("postgresql://", f"postgresql+{driver[11:]}://"))
        try:
            async with engine.begin() as sconn:
                await sconn.execute(text("CREATE TEMP TABLE orders (item text)"))
                yield sconn
        finally:
            await engine.dispose()


async def add_order(conn: Any, item: str) -> None:
    """The application's own write, through its own driver."""
    if isinstance(conn, asyncpg.Connection):
        await conn.execute("INSERT INTO orders VALUES ($1)", item)
    elif isinstance(conn, psycopg.AsyncConnection):
        await conn.execute("INSERT INTO orders VALUES (%s)", (item,))
    else:
        await conn.execute(text("INSERT INTO orders VALUES (:item)"), {"item": item})


@pytest.fixture
async def adapter(pg_schema: str) -> AsyncIterator[QueueAdapter[Probe]]:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        yield QueueAdapter(backend, jobs=ALL_JOBS)


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_committed_enqueue_exists_and_runs(
    adapter: QueueAdapter[Probe], driver: str
) -> None:
    backend = adapter.backend
    async with app_transaction(driver, default_dsn()) as conn:
        await add_order(conn, "tea")
        handle = await adapter.enqueue_in_transaction(
            conn, SHOP, Echo(text=f"{driver} order"), idempotency_key="order-1"
        )
        await add_order(conn, "cake")  # the application's search_path is its own again
        assert await backend.projected_jobs() == {}  # not visible before the commit
    job = await backend.get_job(SHOP, handle)
    assert job.message.idempotency_key == "order-1"
    async with Worker(adapter, context=Probe(), handle_signals=False):
        result = await adapter.wait_result(SHOP, handle, timeout=PATIENCE_SECONDS)
    assert result == f"{driver.upper()} ORDER"


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_rolled_back_enqueue_never_existed(
    adapter: QueueAdapter[Probe], driver: str
) -> None:
    backend = adapter.backend
    parent = await adapter.enqueue(SHOP, Echo(text="parent"))
    with pytest.raises(RolledBack):
        async with app_transaction(driver, default_dsn()) as conn:
            await add_order(conn, "coffee")
            await adapter.enqueue_in_transaction(
                conn, SHOP, Echo(text="never"), after=[parent], idempotency_key="order-2"
            )
            raise RolledBack
    assert list(await backend.projected_jobs()) == [("shop", parent)]
    assert [e.job_id for e in await backend.read_events()] == [parent]
    # The log goes on as if nothing happened: the key is free.
    again = await adapter.enqueue(SHOP, Echo(text="now"), idempotency_key="order-2")
    assert (await backend.get_job(SHOP, again)).message.idempotency_key == "order-2"


async def test_a_connection_outside_a_transaction_is_refused(
    adapter: QueueAdapter[Probe],
) -> None:
    conn = await asyncpg.connect(default_dsn())
    try:
        with pytest.raises(InvalidInput) as raised:
            await adapter.enqueue_in_transaction(conn, SHOP, Echo(text="loose"))
        assert raised.value.field == "connection"
    finally:
        await conn.close()
    async with await psycopg.AsyncConnection.connect(default_dsn(), autocommit=True) as pconn:
        with pytest.raises(InvalidInput) as raised:
            await adapter.enqueue_in_transaction(pconn, SHOP, Echo(text="loose"))
        assert raised.value.field == "connection"
    engine = create_async_engine(default_dsn().replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.connect() as sconn:
            with pytest.raises(InvalidInput) as raised:
                await adapter.enqueue_in_transaction(sconn, SHOP, Echo(text="loose"))
            assert raised.value.field == "connection"
    finally:
        await engine.dispose()
    assert await adapter.backend.projected_jobs() == {}


async def test_a_connection_of_another_kind_or_database_is_refused(
    adapter: QueueAdapter[Probe], tmp_path: Path
) -> None:
    other_db = default_dsn().rsplit("/", 1)[0] + "/template1"
    conn = await asyncpg.connect(other_db)
    try:
        async with conn.transaction():
            with pytest.raises(InvalidInput, match="database") as raised:
                await adapter.enqueue_in_transaction(conn, SHOP, Echo(text="lost"))
            assert raised.value.field == "connection"
    finally:
        await conn.close()
    lite = sqlite3.connect(tmp_path / "app.db")
    try:
        with pytest.raises(InvalidInput) as raised:
            await adapter.enqueue_in_transaction(lite, SHOP, Echo(text="lost"))
        assert raised.value.field == "connection"
    finally:
        lite.close()
    assert await adapter.backend.projected_jobs() == {}


async def test_a_pg_connection_given_to_sqlite_or_memory_is_refused(tmp_path: Path) -> None:
    conn = await asyncpg.connect(default_dsn())
    try:
        async with conn.transaction():
            async with SqliteBackend(tmp_path / "queue.db") as sqlite_backend:
                with pytest.raises(InvalidInput) as raised:
                    await QueueAdapter(sqlite_backend, jobs=ALL_JOBS).enqueue_in_transaction(
                        conn, SHOP, Echo(text="lost")
                    )
                assert raised.value.field == "connection"
            async with MemoryBackend() as memory:
                with pytest.raises(InvalidInput) as raised:
                    await QueueAdapter(memory, jobs=ALL_JOBS).enqueue_in_transaction(
                        conn, SHOP, Echo(text="lost")
                    )
                assert raised.value.field == "connection"
    finally:
        await conn.close()


async def test_a_race_in_a_psycopg_transaction_is_a_storage_error(
    adapter: QueueAdapter[Probe],
) -> None:
    """Two application transactions enqueue one idempotency key: the second waits on the
    first's row and loses the race when the first commits. Its caller sees StorageError
    (its own transaction is aborted), as with asyncpg."""
    first = await asyncpg.connect(default_dsn())
    second = await psycopg.AsyncConnection.connect(default_dsn())
    try:
        async with first.transaction():
            await adapter.enqueue_in_transaction(first, SHOP, Echo(text="a"), idempotency_key="k")
            pid = second.info.backend_pid
            racing = asyncio.ensure_future(
                adapter.enqueue_in_transaction(second, SHOP, Echo(text="b"), idempotency_key="k")
            )
            await within(wait_for_lock(first, pid))
        with pytest.raises(StorageError, match="race"):
            await asyncio.wait_for(racing, PATIENCE_SECONDS)
        await second.rollback()
    finally:
        await first.close()
        await second.close()
    assert len(await adapter.backend.projected_jobs()) == 1


async def wait_for_lock(conn: asyncpg.Connection, pid: int) -> None:
    """Return once session `pid` waits for a lock (the first's unique key)."""
    query = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"
    while True:
        if await conn.fetchval(query, pid):
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("commit", [True, False])
async def test_workers_are_woken_at_the_commit_and_only_then(
    adapter: QueueAdapter[Probe], pg_schema: str, commit: bool
) -> None:
    """The NOTIFY of new work is sent inside the application's transaction: delivered
    when it commits (before a marker sent after the commit), never after a rollback (the
    marker comes first)."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    ready = channel("ready", pg_schema)
    listener = await asyncpg.connect(default_dsn())
    await listener.add_listener(ready, lambda *args: heard.put_nowait(args[3]))
    try:
        with contextlib.suppress(RolledBack):
            async with app_transaction("psycopg", default_dsn()) as conn:
                await adapter.enqueue_in_transaction(conn, SHOP, Echo(text="wake"))
                if not commit:
                    raise RolledBack
        await listener.execute("SELECT pg_notify($1, 'marker')", ready)
        first = await asyncio.wait_for(heard.get(), PATIENCE_SECONDS)
    finally:
        await listener.close()
    assert (first != "marker") is commit
