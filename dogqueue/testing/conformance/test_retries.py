"""Retries: exponential backoff with recorded jitter, limits and permanent failures.
(That a backend applies its jitter draw exactly: tests/integration/test_retry_jitter.py.)"""

from __future__ import annotations

from datetime import timedelta

from dogqueue import Failed, FakeClock, JobStatus, QueueConfig, QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.testing.conformance.fixtures import MakeBackend

from .helpers import message

CTX = QueueCtx("tenant-a")
CONFIG = QueueConfig(
    base_retry_backoff=timedelta(seconds=2), max_retry_backoff=timedelta(seconds=60)
)


async def fail_once(backend: Backend, job_id: str, **kwargs: bool) -> JobStatus:
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None and lease.job_id == job_id
    return await backend.ack_fail(CTX, lease, "flaky", **kwargs)


def jitter_bounds(full: timedelta) -> tuple[timedelta, timedelta]:
    """The shortest and longest delay a full backoff of `full` is jittered to."""
    return full / 2, full


async def test_retry_delay_doubles_and_is_jittered_into_its_bounds(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    async with make_backend(config=CONFIG) as backend:
        job_id = await backend.enqueue(CTX, message(max_retries=10))
        for attempt in range(1, 8):
            failed_at = clock()
            assert await fail_once(backend, job_id) is JobStatus.ENQUEUED
            info = await backend.get_job(CTX, job_id)
            full = min(timedelta(seconds=2) * 2 ** (attempt - 1), timedelta(seconds=60))
            shortest, longest = jitter_bounds(full)
            assert shortest <= info.run_at - failed_at <= longest
            assert info.last_error == "flaky"
            history = await backend.history(CTX, job_id)
            assert isinstance(history[-1], Failed) and history[-1].retry_at == info.run_at
            clock.set(info.run_at)


async def test_max_retries_zero_means_one_attempt(backend: Backend) -> None:
    job_id = await backend.enqueue(CTX, message(max_retries=0))
    assert await fail_once(backend, job_id) is JobStatus.FAILED
    info = await backend.get_job(CTX, job_id)
    assert info.status is JobStatus.FAILED and info.attempts == 1
    assert info.finished_at is not None
    assert await backend.dequeue(CTX, ["default"]) is None


async def test_retries_stop_after_max_retries(backend: Backend, clock: FakeClock) -> None:
    job_id = await backend.enqueue(CTX, message(max_retries=2))
    statuses = []
    for _ in range(3):
        statuses.append(await fail_once(backend, job_id))
        clock.advance(timedelta(hours=2))
    assert statuses == [JobStatus.ENQUEUED, JobStatus.ENQUEUED, JobStatus.FAILED]
    assert (await backend.get_job(CTX, job_id)).attempts == 3


async def test_retry_false_fails_at_once(backend: Backend) -> None:
    job_id = await backend.enqueue(CTX, message(max_retries=5))
    assert await fail_once(backend, job_id, retry=False) is JobStatus.FAILED


async def test_an_expired_lease_is_a_failed_attempt(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    async with make_backend(config=CONFIG) as backend:
        job_id = await backend.enqueue(CTX, message(max_retries=1))
        assert await backend.dequeue(CTX, ["default"], lease_duration=timedelta(seconds=5))
        clock.advance(timedelta(seconds=5))
        assert await backend.reap_expired() == 1
        info = await backend.get_job(CTX, job_id)
        assert info.status is JobStatus.ENQUEUED
        shortest, longest = jitter_bounds(timedelta(seconds=2))
        assert clock() + shortest <= info.run_at <= clock() + longest
        clock.set(info.run_at)
        assert await backend.dequeue(CTX, ["default"], lease_duration=timedelta(seconds=5))
        clock.advance(timedelta(seconds=5))
        assert await backend.reap_expired() == 1
        assert await backend.get_status(CTX, job_id) is JobStatus.FAILED


async def test_huge_attempt_numbers_cap_at_max_backoff(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    config = QueueConfig(
        base_retry_backoff=timedelta(seconds=1), max_retry_backoff=timedelta(hours=1)
    )
    async with make_backend(config=config) as backend:
        job_id = await backend.enqueue(CTX, message(max_retries=1000))
        for _ in range(40):
            await fail_once(backend, job_id)
            clock.set((await backend.get_job(CTX, job_id)).run_at)
        failed_at = clock()
        await fail_once(backend, job_id)
        shortest, longest = jitter_bounds(timedelta(hours=1))
        assert shortest <= (await backend.get_job(CTX, job_id)).run_at - failed_at <= longest


async def test_retry_job_revives_a_dead_letter(backend: Backend, clock: FakeClock) -> None:
    job_id = await backend.enqueue(CTX, message(max_retries=0))
    first = await backend.dequeue(CTX, ["default"])
    assert first is not None
    await backend.ack_fail(CTX, first, "bad")
    assert await backend.retry_job(CTX, job_id) is JobStatus.ENQUEUED
    info = await backend.get_job(CTX, job_id)
    assert info.attempts == 0 and info.run_at == clock()
    again = await backend.dequeue(CTX, ["default"])
    assert again is not None and again.attempt == 1 and again.lease_token > first.lease_token
    assert [e.type for e in await backend.history(CTX, job_id)][-2] == "requeued"
