"""All or nothing: a unit of work that fails commits none of its events, on every
backend; a caller cancelled while its leases commit does not strand them."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from dogqueue import QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.core.status import JobStatus
from dogqueue.engine import Reads, Transaction
from tests.conformance.helpers import log_size, message

ACME = QueueCtx("acme")


class Boom(Exception):
    """Raised by a unit of work after it wrote."""


async def test_a_failing_unit_leaves_nothing(backend: EngineBackend) -> None:
    kept = await backend.enqueue(ACME, message("kept"))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    before_log = await log_size(backend)
    before_jobs = await backend.projected_jobs()
    engine = backend._engine

    def doomed(tx: Transaction, now: datetime) -> None:
        engine.enqueue(tx, "acme", (message("doomed", idempotency_key="k"),), now)
        engine.cancel(tx, "acme", kept, now)
        raise Boom

    with pytest.raises(Boom):
        await backend._transact(
            doomed, Reads(jobs=(("acme", kept),), keys=(("acme", "k"),), new_jobs=1)
        )

    assert await log_size(backend) == before_log
    assert await backend.projected_jobs() == before_jobs
    # The key is free and the leased job is still leased and reclaimable.
    await backend.enqueue(ACME, message("again", idempotency_key="k"))
    assert await backend.get_status(ACME, kept) is JobStatus.LEASED
    await backend.ack_complete(ACME, lease)
    assert await backend.get_status(ACME, kept) is JobStatus.COMPLETED


async def test_enqueue_many_with_a_taken_key_keeps_none(backend: EngineBackend) -> None:
    await backend.enqueue(ACME, message("first", idempotency_key="taken"))
    before = await log_size(backend)
    with pytest.raises(Exception, match="taken"):
        await backend.enqueue_many(ACME, [message("good"), message("bad", idempotency_key="taken")])
    assert await log_size(backend) == before
    assert len(await backend.projected_jobs()) == 1


async def test_a_cancelled_dequeue_releases_what_it_leased(backend: EngineBackend) -> None:
    job_ids = await backend.enqueue_many(ACME, [message("a"), message("b")])
    caller = asyncio.ensure_future(backend.dequeue_many(ACME, ["default"], 2))
    await asyncio.sleep(0)  # the unit of work is queued; now its caller goes away
    caller.cancel()
    try:
        held = await caller
    except asyncio.CancelledError:
        held = []
    if held:  # the call finished before the cancel arrived: its caller holds the leases
        assert sorted(lease.job_id for lease in held) == sorted(job_ids)
        return
    for job_id in job_ids:  # it was leased, then given back in the background
        types: list[str] = []
        for _ in range(1000):
            types = [e.type for e in await backend.history(ACME, job_id)]
            if len(types) >= 3:
                break
            await asyncio.sleep(0.01)
        assert types == ["enqueued", "leased", "released"]
        assert await backend.get_status(ACME, job_id) is JobStatus.ENQUEUED
    leases = await backend.dequeue_many(ACME, ["default"], 2)
    assert sorted(lease.job_id for lease in leases) == sorted(job_ids)
    assert all(lease.attempt == 1 for lease in leases)
