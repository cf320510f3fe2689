"""A batch's flush reads only the job rows it moves, however many jobs the queue holds:
the guarded update finds them by key (before, a queue of 3,000 jobs had every row read,
hashed or sorted by each lease and each settle)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dogqueue import Completion, JobMessage, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.connections import Session
from dogqueue.backend.postgres.queries import Q
from tests.integration.test_postgres_sequencer_plan import rows_read

pytestmark = pytest.mark.postgres

JOBS = 3_000
BATCH = 100
ACME = QueueCtx("acme")


class ExplainingFlush:
    """An asyncpg connection whose `flush` is first run under EXPLAIN ANALYZE and rolled back; the
    plans are kept in `plans`."""

    def __init__(self, conn: Any, plans: list[dict[str, Any]]) -> None:
        self._conn = conn
        self._plans = plans

    async def fetchval(self, query: str, *args: Any) -> Any:
        if query == Q["flush"]:
            inside = self._conn.is_in_transaction()  # a lease batch's, else none
            await self._conn.execute("SAVEPOINT explained" if inside else "BEGIN")
            found = await self._conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *args)
            await self._conn.execute("ROLLBACK TO SAVEPOINT explained" if inside else "ROLLBACK")
            self._plans.append(json.loads(found)[0]["Plan"])
        return await self._conn.fetchval(query, *args)


async def test_a_lease_and_a_settle_read_only_the_rows_they_move(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = JobMessage(job_type="t", payload_bytes=b"{}")
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        for _ in range(JOBS // 500):
            await backend.enqueue_many(ACME, [message] * 500)
        async with backend.pool.acquire() as conn:
            await conn.execute("ANALYZE jobs")
        plans: list[dict[str, Any]] = []
        flush = PostgresBackend._flush

        async def explained(self: PostgresBackend, conn: Session, *rest: Any) -> None:
            await flush(self, ExplainingFlush(conn, plans), *rest)  # type: ignore[arg-type]

        monkeypatch.setattr(PostgresBackend, "_flush", explained)
        leases = await backend.dequeue_many(ACME, ["default"], BATCH)
        await backend.settle_many(ACME, [Completion(lease=lease) for lease in leases])

        assert len(plans) == 2
        for plan in plans:
            assert max(rows_read(plan, "jobs")) <= BATCH
        assert len(await backend.dequeue_many(ACME, ["default"], JOBS)) == JOBS - BATCH
