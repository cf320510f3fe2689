"""Two enqueue batches of one process in flight at once on PostgreSQL: an idempotency
key both insert ends in exactly one job, whose id both callers learn (the loser as
JobAlreadyExists, as when the two race from two processes); a job of the batch still in
flight is dequeued by no one (this process's claim waits for it to land, another
process's cannot see it) until that batch commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dogqueue import JobAlreadyExists, JobMessage, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from tests.integration.pg_holds import hold_flushes

pytestmark = pytest.mark.postgres

SHOP = QueueCtx("shop")
#: Only a deadlock's guard (main holds the second batch until the first lands): no
#: timing is asserted.
GUARD = 30.0


@pytest.fixture
async def pg(pg_schema: str) -> AsyncIterator[PostgresBackend]:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        yield backend


def message(key: str | None = None) -> JobMessage:
    return JobMessage(job_type="probe", payload_bytes=b"{}", idempotency_key=key)


async def test_a_key_inserted_by_two_batches_in_flight_ends_in_one_job(
    pg: PostgresBackend,
) -> None:
    first_flush = asyncio.Event()
    try:
        reached = hold_flushes(pg, lambda n: first_flush if n == 0 else None)
        first = asyncio.ensure_future(pg.enqueue_many(SHOP, [message("order-1"), message()]))
        await reached[0].wait()
        # The first batch read the key (free) and waits before its flush; the second, in
        # flight beside it, reads the key free too, inserts it and commits.
        winner = await asyncio.wait_for(pg.enqueue(SHOP, message("order-1")), GUARD)
        first_flush.set()
        with pytest.raises(JobAlreadyExists) as lost:
            await first
        assert lost.value.job_id == winner
        jobs = await pg.projected_jobs()
        assert [job.job_id for job in jobs.values()] == [winner]  # all or nothing: not its twin
        assert pg.conflicts >= 1

    finally:  # never leave a flush held: close waits for it
        first_flush.set()


async def test_a_job_of_a_batch_in_flight_is_dequeued_only_after_its_commit(
    pg: PostgresBackend, pg_schema: str
) -> None:
    first_flush, second_flush = asyncio.Event(), asyncio.Event()
    try:
        reached = hold_flushes(pg, {0: first_flush, 1: second_flush}.get)
        first = asyncio.ensure_future(pg.enqueue(SHOP, message()))
        await reached[0].wait()
        second = asyncio.ensure_future(pg.enqueue(SHOP, message()))
        await asyncio.wait_for(reached[1].wait(), GUARD)
        first_flush.set()
        first_id = await asyncio.wait_for(first, GUARD)
        assert not second.done()
        async with PostgresBackend(default_dsn(), schema=pg_schema) as other:
            seen = await other.dequeue_many(SHOP, ["default"], 10)
            assert [lease.job_id for lease in seen] == [first_id]  # not the held job
            # This process's claim waits for the batch in flight, then finds its job.
            claim = asyncio.ensure_future(pg.dequeue_many(SHOP, ["default"], 10))
            for _ in range(20):
                await asyncio.sleep(0)
            assert not claim.done()
            second_flush.set()
            second_id = await asyncio.wait_for(second, GUARD)
            leases = await asyncio.wait_for(claim, GUARD)
            assert [lease.job_id for lease in leases] == [second_id]
    finally:
        first_flush.set()
        second_flush.set()
