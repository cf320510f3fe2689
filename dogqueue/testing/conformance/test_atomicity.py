"""All or nothing: a transaction lost before its commit leaves none of its events, on
every backend; what was committed survives reopening; a caller cancelled while its
leases commit does not strand them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from dogqueue import FakeClock, QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.core.status import JobStatus
from dogqueue.testing.conformance.fixtures import MakeBackend, hook
from dogqueue.testing.factories import BackendFactory

from .helpers import log_size, message

ACME = QueueCtx("acme")


async def test_a_transaction_lost_before_its_commit_leaves_nothing(
    backend: Backend, backend_factory: BackendFactory, clock: FakeClock
) -> None:
    crash = hook(backend_factory, "crash_mid_transaction")
    kept, expiring = await backend.enqueue_many(ACME, [message("kept"), message("expiring")])
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None and lease.job_id == kept
    assert await backend.dequeue(ACME, ["default"], lease_duration=timedelta(seconds=30))
    before_log = await backend.read_events()
    before_jobs = await backend.projected_jobs()

    # The lost transaction enqueued a job and canceled every leased one.
    await crash(backend)

    assert await backend.read_events() == before_log
    assert await backend.projected_jobs() == before_jobs
    # The backend goes on: the leases it lost nothing of complete, or expire once.
    assert await backend.get_status(ACME, kept) is JobStatus.LEASED
    await backend.ack_complete(ACME, lease)
    assert await backend.get_status(ACME, kept) is JobStatus.COMPLETED
    clock.advance(timedelta(seconds=31))
    assert await backend.reap_expired() == 1
    assert [e.type for e in await backend.history(ACME, expiring)][-1] == "expired"
    await backend.enqueue(ACME, message("after"))
    assert len(await backend.read_events()) == len(before_log) + 3


async def test_the_log_and_jobs_survive_close_and_reopen(
    make_backend: MakeBackend, backend_factory: BackendFactory
) -> None:
    reopen = hook(backend_factory, "reopen")
    first = make_backend()
    async with first:
        done, failed, waiting = await first.enqueue_many(
            ACME, [message("done"), message("failed", max_retries=0), message("waiting")]
        )
        for error in (None, "bad"):
            lease = await first.dequeue(ACME, ["default"])
            assert lease is not None
            if error is None:
                await first.ack_complete(ACME, lease, b"ok")
            else:
                await first.ack_fail(ACME, lease, error)
        events, jobs = await first.read_events(), await first.projected_jobs()

    async with reopen(first) as again:
        assert await again.read_events() == events
        assert await again.projected_jobs() == jobs
        assert await again.get_status(ACME, done) is JobStatus.COMPLETED
        assert await again.get_status(ACME, failed) is JobStatus.FAILED
        lease = await again.dequeue(ACME, ["default"])
        assert lease is not None and lease.job_id == waiting


async def test_enqueue_many_with_a_taken_key_keeps_none(backend: Backend) -> None:
    await backend.enqueue(ACME, message("first", idempotency_key="taken"))
    before = await log_size(backend)
    with pytest.raises(Exception, match="taken"):
        await backend.enqueue_many(ACME, [message("good"), message("bad", idempotency_key="taken")])
    assert await log_size(backend) == before
    assert len(await backend.projected_jobs()) == 1


async def test_a_cancelled_dequeue_releases_what_it_leased(backend: Backend) -> None:
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
