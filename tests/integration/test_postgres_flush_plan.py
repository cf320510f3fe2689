"""A batch's flush reads only the job rows it moves, however many jobs the queue holds:
the guarded update finds them by key (before, a queue of 3,000 jobs had every row read,
hashed or sorted by each lease and each settle)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from dogqueue import Completion, FakeClock, JobMessage, QueueConfig, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.claims import RECLAIM_LIMIT, writer_transaction
from dogqueue.backend.postgres.connections import Session
from dogqueue.backend.postgres.queries import Q
from dogqueue.core.events import ParentFinished
from dogqueue.testing.conformance.helpers import message
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
    job = JobMessage(job_type="t", payload_bytes=b"{}")
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        for _ in range(JOBS // 500):
            await backend.enqueue_many(ACME, [job] * 500)
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


async def test_a_lease_reads_its_jobs_in_dequeue_order_whatever_the_statistics(
    pg_schema: str,
) -> None:
    job = JobMessage(job_type="t", payload_bytes=b"{}")
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        async with backend.pool.acquire() as conn:
            await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
            await backend.enqueue(ACME, job)
            await conn.execute("ANALYZE jobs")  # statistics of a queue holding one job
        for _ in range(JOBS // 500):
            await backend.enqueue_many(ACME, [job] * 500)
        async with backend.pool.acquire() as conn, writer_transaction(conn):
            plan = json.loads(
                await conn.fetchval(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) {Q['claim_for_lease']}",
                    "acme",
                    "default",
                    BATCH,
                    RECLAIM_LIMIT,
                    None,
                )
            )[0]["Plan"]
            await conn.execute("ROLLBACK; BEGIN")  # writer_transaction commits nothing
        assert int(plan["Actual Rows"]) == 1 + BATCH
        assert max(rows_read(plan, "jobs")) <= BATCH


async def test_a_reclaiming_batch_settles_each_parents_dependents_oldest_first(
    pg_schema: str,
) -> None:
    clock = FakeClock()
    config = QueueConfig(default_lease_duration=timedelta(seconds=10))
    async with PostgresBackend(default_dsn(), schema=pg_schema, clock=clock, config=config) as pg:
        parents = [await pg.enqueue(ACME, message("parent", max_retries=0)) for _ in range(2)]
        children = [
            await pg.enqueue(ACME, message("child", after=(parents[n % 2],))) for n in range(8)
        ]
        await pg.dequeue_many(ACME, ["default"], 2)
        clock.advance(timedelta(seconds=11))
        assert await pg.reap_expired() == 2  # one claiming batch, sorts planned off

        settled = [
            event.job_id
            for event in await pg.read_events()
            if event.job_id in children and isinstance(event, ParentFinished)
        ]
        assert settled == children[0::2] + children[1::2]


async def test_a_claiming_batch_locks_only_the_jobs_it_loads(pg_schema: str) -> None:
    job = JobMessage(job_type="t", payload_bytes=b"{}")
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        ids: list[str] = []
        for _ in range(JOBS // 500):
            ids += await backend.enqueue_many(ACME, [job] * 500)
        async with backend.pool.acquire() as conn:
            await conn.execute("ANALYZE jobs")
            async with writer_transaction(conn):
                wanted = sorted(ids[1000:1003])
                plan = json.loads(
                    await conn.fetchval(
                        f"EXPLAIN (ANALYZE, FORMAT JSON) {Q['lock_jobs']}", ["acme"] * 3, wanted
                    )
                )[0]["Plan"]
                await conn.execute("ROLLBACK; BEGIN")  # writer_transaction commits nothing
        assert int(plan["Actual Rows"]) == 3
        assert sum(rows_read(plan, "jobs")) == 3
