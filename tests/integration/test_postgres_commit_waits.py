"""Which commits may skip waiting for a WAL flush on PostgreSQL: only statements that run
on their own (drawing an enqueue batch's positions, a paced NOTIFY), never a transaction
that writes jobs. The setting is local to the statement's own transaction: it never
reaches an application's transaction nor outlasts the statement on a pooled connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.reads import batch_time_and_seqs
from dogqueue.clock import FakeClock

pytestmark = pytest.mark.postgres

SHOP = QueueCtx("shop")
CLOCKS = ["server", "fake"]


def message() -> JobMessage:
    return JobMessage(job_type="probe", payload_bytes=b"{}")


@pytest.fixture(params=CLOCKS)
async def backend(request: pytest.FixtureRequest, pg_schema: str) -> AsyncIterator[PostgresBackend]:
    clock = None if request.param == "server" else FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    async with PostgresBackend(default_dsn(), schema=pg_schema, clock=clock) as opened:
        yield opened


async def waits_for_flush(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SHOW synchronous_commit") == "on")


async def test_an_enqueue_in_an_app_transaction_leaves_its_commit_waiting_for_the_flush(
    backend: PostgresBackend,
) -> None:
    conn = await asyncpg.connect(default_dsn())
    try:
        assert await waits_for_flush(conn)  # the server's default, which this relies on
        async with conn.transaction():
            await backend.enqueue_in_transaction(conn, SHOP, message())
            assert await waits_for_flush(conn)
    finally:
        await conn.close()
    assert len(await backend.projected_jobs()) == 1


async def test_pooled_connections_wait_for_the_flush_after_enqueues_and_notifies(
    backend: PostgresBackend,
) -> None:
    await backend.enqueue_many(SHOP, [message() for _ in range(3)])
    await backend.enqueue(SHOP, message())
    for _ in range(backend.pool.get_size()):
        async with backend.pool.acquire() as conn:
            assert await waits_for_flush(conn)


@pytest.mark.parametrize("clock", CLOCKS)
async def test_positions_drawn_inside_a_transaction_leave_its_commit_waiting(
    pg_schema: str, clock: str
) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as opened:
        fake = None if clock == "server" else FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
        async with opened.pool.acquire() as conn:
            async with conn.transaction():
                _, seqs = await batch_time_and_seqs(conn, 2, fake)
                assert len(seqs) == 2 and await waits_for_flush(conn)
            _, seqs = await batch_time_and_seqs(conn, 2, fake, alone=True)
            assert len(seqs) == 2 and await waits_for_flush(conn)
