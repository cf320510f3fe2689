"""A claim batch and a settle batch of one process in flight at once on PostgreSQL: a
claim commits while a settle's flush is held open; and a settle racing a claim that
reclaims the same job's expired lease ends with exactly one valid outcome, whichever
writes first (the settle's old lease refused, the new one acknowledged once), as when
the two come from two processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from dogqueue import JobMessage, LeaseLost, QueueConfig, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.clock import FakeClock
from dogqueue.core.status import JobStatus
from tests.integration.pg_holds import hold_flushes

pytestmark = pytest.mark.postgres

SHOP = QueueCtx("shop")
LEASE = timedelta(seconds=30)
#: Only a deadlock's guard (main holds a claim until the settle in flight lands): no
#: timing is asserted.
GUARD = 30.0


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
async def pg(pg_schema: str, clock: FakeClock) -> AsyncIterator[PostgresBackend]:
    config = QueueConfig(base_retry_backoff=timedelta(0))  # an expired job is ready at once
    async with PostgresBackend(
        default_dsn(), schema=pg_schema, clock=clock, config=config
    ) as backend:
        yield backend


def message() -> JobMessage:
    return JobMessage(job_type="probe", payload_bytes=b"{}")


async def test_a_claim_commits_while_a_settle_is_in_flight(pg: PostgresBackend) -> None:
    first, second = await pg.enqueue_many(SHOP, [message(), message()])
    (lease,) = await pg.dequeue_many(SHOP, ["default"], 1, lease_duration=LEASE)
    assert lease.job_id == first
    gate = asyncio.Event()
    try:
        reached = hold_flushes(pg, lambda n: gate if n == 0 else None)
        settle = asyncio.ensure_future(pg.ack_complete(SHOP, lease))
        await asyncio.wait_for(reached[0].wait(), GUARD)
        claimed = await asyncio.wait_for(pg.dequeue_many(SHOP, ["default"], 10), GUARD)
        assert [job.job_id for job in claimed] == [second]
        assert not settle.done()  # its batch is still held: its caller has not returned
        gate.set()
        await asyncio.wait_for(settle, GUARD)
    finally:  # never leave a flush held: close waits for it
        gate.set()
    assert (await pg.get_status(SHOP, first)) is JobStatus.COMPLETED
    assert (await pg.get_status(SHOP, second)) is JobStatus.LEASED


@pytest.mark.parametrize("claim_held", [False, True], ids=["claim-first", "both-held"])
async def test_a_settle_racing_a_reclaim_of_its_expired_lease_is_refused(
    pg: PostgresBackend, clock: FakeClock, claim_held: bool
) -> None:
    (job_id,) = await pg.enqueue_many(SHOP, [message()])
    (old,) = await pg.dequeue_many(SHOP, ["default"], 1, lease_duration=LEASE)
    settle_gate, claim_gate = asyncio.Event(), asyncio.Event()
    gates = {0: settle_gate, 1: claim_gate if claim_held else None}
    try:
        reached = hold_flushes(pg, gates.get)
        # The settle decides while the lease is valid, then waits before its flush.
        settle = asyncio.ensure_future(pg.ack_complete(SHOP, old))
        await asyncio.wait_for(reached[0].wait(), GUARD)
        clock.advance(LEASE * 2)
        # The claim beside it reclaims the expired lease (the job is ready again at
        # once) and leases the job anew, holding its row until it commits.
        claim = asyncio.ensure_future(pg.dequeue_many(SHOP, ["default"], 1, lease_duration=LEASE))
        await asyncio.wait_for(reached[1].wait(), GUARD)
        if claim_held:
            # The settle's statement reaches a row the claim holds: it writes after the
            # claim commits, or not at all.
            settle_gate.set()
            claim_gate.set()
        (new,) = await asyncio.wait_for(claim, GUARD)
        settle_gate.set()
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(settle, GUARD)
    finally:
        settle_gate.set()
        claim_gate.set()
    assert new.job_id == job_id and new.lease_token > old.lease_token
    assert (await pg.get_status(SHOP, job_id)) is JobStatus.LEASED
    await pg.ack_complete(SHOP, new)
    events = [event.type for event in await pg.history(SHOP, job_id)]
    assert events.count("completed") == 1
    assert events.count("leased") == 2
    assert pg.conflicts >= 1
