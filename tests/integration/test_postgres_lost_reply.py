"""A connection lost around COMMIT on PostgreSQL: before it, nothing is written; after it
(the reply lost), a retried acknowledgement never appends a second `completed`."""

from __future__ import annotations

import asyncpg
import pytest

from dogqueue import LeaseLost, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from tests.integration.pg_client import message

pytestmark = pytest.mark.postgres

ACME = QueueCtx("acme")


async def test_a_retried_ack_after_a_lost_reply_completes_once(pg_schema: str) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        job_id = await backend.enqueue(ACME, message())
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None

        ack = backend.engine.complete_unit("acme", lease, b"done")

        # The first attempt commits, then its connection dies before the reply arrives.
        conn = await asyncpg.connect(default_dsn(), server_settings={"search_path": pg_schema})
        async with conn.transaction():
            await backend.run_unit_in(conn, ack)
        conn.terminate()

        # The caller does not know, and retries with the same lease.
        with pytest.raises(LeaseLost):
            await backend.ack_complete(ACME, lease, b"done")
        history = [e.type for e in await backend.history(ACME, job_id)]
        assert history == ["enqueued", "leased", "completed"]


async def test_a_connection_killed_before_commit_writes_nothing(pg_schema: str) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        job_id = await backend.enqueue(ACME, message())
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None
        before = await backend.read_events()

        conn = await asyncpg.connect(default_dsn(), server_settings={"search_path": pg_schema})
        transaction = conn.transaction()
        await transaction.start()
        await backend.run_unit_in(conn, backend.engine.complete_unit("acme", lease, b"done"))
        killer = await asyncpg.connect(default_dsn())
        await killer.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
        await killer.close()
        with pytest.raises(Exception):  # noqa: B017 (the driver reports it its own way)
            await transaction.commit()
        conn.terminate()

        assert await backend.read_events() == before
        await backend.ack_complete(ACME, lease, b"done")  # the lease still holds
        history = [e.type for e in await backend.history(ACME, job_id)]
        assert history == ["enqueued", "leased", "completed"]
