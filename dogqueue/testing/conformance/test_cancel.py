"""Cancel wins: over queued jobs, over running jobs, and over every later acknowledgement."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dogqueue import FakeClock, JobCanceled, JobStatus, QueueCtx
from dogqueue.backend.contract import Backend

from .helpers import assert_lease_refused, log_size, message

CTX = QueueCtx("tenant-a")


async def test_cancel_an_enqueued_job(backend: Backend) -> None:
    job_id = await backend.enqueue(CTX, message())
    assert await backend.cancel_job(CTX, job_id) is JobStatus.CANCELED
    assert await backend.get_status(CTX, job_id) is JobStatus.CANCELED
    assert await backend.dequeue(CTX, ["default"]) is None


async def test_cancel_during_a_lease_beats_the_later_ack(backend: Backend) -> None:
    job_id = await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    assert await backend.cancel_job(CTX, job_id) is JobStatus.CANCELED
    await assert_lease_refused(backend, CTX, lease, JobCanceled)
    info = await backend.get_job(CTX, job_id)
    assert info.status is JobStatus.CANCELED and info.result is None


async def test_canceled_takes_precedence_over_an_expired_lease(
    backend: Backend, clock: FakeClock
) -> None:
    job_id = await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"], lease_duration=timedelta(seconds=1))
    assert lease is not None
    await backend.cancel_job(CTX, job_id)
    clock.advance(timedelta(hours=1))
    with pytest.raises(JobCanceled):
        await backend.ack_complete(CTX, lease)
    assert await backend.reap_expired() == 0
    assert await backend.dequeue(CTX, ["default"]) is None


async def test_cancel_is_idempotent_and_terminal_states_stay(backend: Backend) -> None:
    canceled = await backend.enqueue(CTX, message())
    await backend.cancel_job(CTX, canceled)
    before = await log_size(backend)
    assert await backend.cancel_job(CTX, canceled) is JobStatus.CANCELED
    assert await log_size(backend) == before

    done = await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None and lease.job_id == done
    await backend.ack_complete(CTX, lease)
    before = await log_size(backend)
    assert await backend.cancel_job(CTX, done) is JobStatus.COMPLETED
    assert await log_size(backend) == before

    failed = await backend.enqueue(CTX, message(max_retries=0))
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None and lease.job_id == failed
    await backend.ack_fail(CTX, lease, "x")
    assert await backend.cancel_job(CTX, failed) is JobStatus.FAILED


async def test_a_canceled_job_is_never_leased_again(backend: Backend, clock: FakeClock) -> None:
    job_id = await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"], lease_duration=timedelta(seconds=1))
    assert lease is not None
    await backend.cancel_job(CTX, job_id)
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        await backend.reap_expired()
        assert await backend.dequeue(CTX, ["default"]) is None
    types = [e.type for e in await backend.history(CTX, job_id)]
    assert types == ["enqueued", "leased", "canceled"]


async def test_retry_job_of_a_canceled_job_needs_the_flag(backend: Backend) -> None:
    from dogqueue import InvalidTransition

    job_id = await backend.enqueue(CTX, message())
    await backend.cancel_job(CTX, job_id)
    with pytest.raises(InvalidTransition):
        await backend.retry_job(CTX, job_id)
    assert await backend.retry_job(CTX, job_id, include_canceled=True) is JobStatus.ENQUEUED
