"""Fencing tokens, lease expiry and the reaper."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dogqueue import FakeClock, JobStatus, LeaseLost, QueueCtx
from dogqueue.backend.contract import Backend

from .helpers import assert_lease_refused, log_size, message

CTX = QueueCtx("tenant-a")
SHORT = timedelta(seconds=30)


async def test_stale_token_after_expiry_and_release_is_rejected(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await backend.enqueue(CTX, message())
    stale = await backend.dequeue(CTX, ["default"], lease_duration=SHORT)
    assert stale is not None
    clock.advance(SHORT)
    assert await backend.reap_expired() == 1
    clock.advance(backend.config.base_retry_backoff)  # the longest first retry delay
    fresh = await backend.dequeue(CTX, ["default"], lease_duration=SHORT)
    assert fresh is not None and fresh.job_id == job_id
    assert fresh.lease_token > stale.lease_token
    assert fresh.attempt == 2
    await assert_lease_refused(backend, CTX, stale, LeaseLost)
    await backend.ack_complete(CTX, fresh)
    assert await backend.get_status(CTX, job_id) is JobStatus.COMPLETED


async def test_lease_is_invalid_at_its_expiry_even_before_reaping(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"], lease_duration=SHORT)
    assert lease is not None
    clock.advance(SHORT - timedelta(microseconds=1))
    await backend.heartbeat(CTX, lease, lease_duration=SHORT)
    clock.advance(SHORT)
    before = await log_size(backend)
    with pytest.raises(LeaseLost):
        await backend.ack_complete(CTX, lease)
    with pytest.raises(LeaseLost):
        await backend.heartbeat(CTX, lease)
    assert await log_size(backend) == before
    assert await backend.get_status(CTX, job_id) is JobStatus.LEASED


async def test_a_forged_token_is_rejected(backend: Backend) -> None:
    import msgspec

    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    forged = msgspec.structs.replace(lease, lease_token=lease.lease_token + 1)
    with pytest.raises(LeaseLost):
        await backend.ack_complete(CTX, forged)


async def test_completed_job_rejects_its_old_lease(backend: Backend) -> None:
    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    await backend.ack_complete(CTX, lease)
    with pytest.raises(LeaseLost):
        await backend.ack_complete(CTX, lease)
    with pytest.raises(LeaseLost):
        await backend.ack_fail(CTX, lease, "again")


async def test_reap_expired_counts_and_requeues_across_tenants(
    backend: Backend, clock: FakeClock
) -> None:
    for tenant in ("t1", "t2"):
        await backend.enqueue(QueueCtx(tenant), message())
        assert await backend.dequeue(QueueCtx(tenant), ["default"], lease_duration=SHORT)
    await backend.enqueue(QueueCtx("t3"), message())
    assert await backend.dequeue(QueueCtx("t3"), ["default"], lease_duration=SHORT * 4)
    assert await backend.reap_expired() == 0
    clock.advance(SHORT)
    assert await backend.reap_expired() == 2
    assert await backend.reap_expired() == 0
    for tenant in ("t1", "t2"):
        [job] = [j for (t, _), j in (await backend.projected_jobs()).items() if t == tenant]
        assert job.status is JobStatus.ENQUEUED
        assert job.last_error == "lease expired"
        history = await backend.history(QueueCtx(tenant), job.job_id)
        assert history[-1].type == "expired"


async def test_dequeue_reclaims_expired_leases_without_the_reaper(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await backend.enqueue(CTX, message(max_retries=0))
    assert await backend.dequeue(CTX, ["default"], lease_duration=SHORT)
    clock.advance(SHORT)
    assert await backend.dequeue(CTX, ["default"]) is None  # no retries left: failed
    info = await backend.get_job(CTX, job_id)
    assert info.status is JobStatus.FAILED
    assert [e.type for e in await backend.history(CTX, job_id)][-1] == "expired"
