"""Enqueue, lease, acknowledge and read back: the basic life of a job on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from dogqueue import (
    FakeClock,
    JobMessage,
    JobPriority,
    JobStatus,
    QueueCtx,
    fold,
)
from dogqueue.backend.contract import Backend

from .helpers import message

CTX = QueueCtx("tenant-a")


async def test_enqueue_creates_an_enqueued_job(backend: Backend, clock: FakeClock) -> None:
    job_id = await backend.enqueue(CTX, message(payload=b'{"n":1}', max_retries=5))
    info = await backend.get_job(CTX, job_id)
    assert info.job_id == job_id
    assert info.tenant_id == "tenant-a"
    assert info.status is JobStatus.ENQUEUED
    assert info.message.payload_bytes == b'{"n":1}'
    assert info.message.max_retries == 5
    assert info.attempts == 0
    assert info.result is None and info.last_error is None
    assert info.created_at == clock() and info.run_at == clock()
    assert info.lease_expires_at is None
    assert await backend.get_status(CTX, job_id) is JobStatus.ENQUEUED


async def test_job_ids_are_unique(backend: Backend) -> None:
    ids = [await backend.enqueue(CTX, message()) for _ in range(50)]
    ids += await backend.enqueue_many(CTX, [message() for _ in range(50)])
    assert len(set(ids)) == 100


async def test_lease_then_complete(backend: Backend, clock: FakeClock) -> None:
    job_id = await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"], lease_duration=timedelta(seconds=30))
    assert lease is not None
    assert lease.job_id == job_id
    assert lease.attempt == 1
    assert lease.lease_token >= 1
    assert lease.lease_expires_at == clock() + timedelta(seconds=30)
    info = await backend.get_job(CTX, job_id)
    assert info.status is JobStatus.LEASED
    assert info.lease_expires_at == lease.lease_expires_at
    await backend.ack_complete(CTX, lease, b'"done"')
    info = await backend.get_job(CTX, job_id)
    assert info.status is JobStatus.COMPLETED
    assert info.result == b'"done"'
    assert info.lease_expires_at is None
    assert info.finished_at == clock()


async def test_default_lease_duration_comes_from_config(backend: Backend, clock: FakeClock) -> None:
    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    assert lease.lease_expires_at == clock() + backend.config.default_lease_duration


async def test_dequeue_on_empty_queue_returns_none(backend: Backend) -> None:
    assert await backend.dequeue(CTX, ["default"]) is None
    await backend.enqueue(CTX, message(queue="other"))
    assert await backend.dequeue(CTX, ["default"]) is None


async def test_heartbeat_extends_the_lease_with_the_same_token(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"], lease_duration=timedelta(seconds=10))
    assert lease is not None
    clock.advance(timedelta(seconds=8))
    renewed = await backend.heartbeat(CTX, lease, lease_duration=timedelta(seconds=10))
    assert renewed.lease_token == lease.lease_token
    assert renewed.lease_expires_at == clock() + timedelta(seconds=10)
    clock.advance(timedelta(seconds=8))  # past the first expiry, within the renewed one
    await backend.ack_complete(CTX, renewed)
    assert await backend.get_status(CTX, lease.job_id) is JobStatus.COMPLETED


async def test_history_lists_events_in_log_order(backend: Backend) -> None:
    job_id = await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    await backend.heartbeat(CTX, lease)
    await backend.ack_complete(CTX, lease)
    history = await backend.history(CTX, job_id)
    assert [e.type for e in history] == ["enqueued", "leased", "heartbeat", "completed"]
    seqs = [e.seq for e in history]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4 and seqs[0] >= 1
    assert all(e.at.tzinfo is not None for e in history)
    assert fold(history) == await backend.get_job(CTX, job_id)


async def test_times_are_stored_and_returned_in_utc(backend: Backend, clock: FakeClock) -> None:
    plus_two = timezone(timedelta(hours=2))
    when = (clock() + timedelta(hours=1)).astimezone(plus_two)
    job_id = await backend.enqueue(CTX, message(run_at=when))
    info = await backend.get_job(CTX, job_id)
    assert info.run_at == when
    assert info.run_at.utcoffset() == timedelta(0)
    assert info.message.run_at is not None and info.message.run_at.utcoffset() == timedelta(0)


async def test_enqueue_many_returns_ids_in_order(backend: Backend) -> None:
    messages = [message(payload=f'{{"i":{i}}}'.encode()) for i in range(5)]
    ids = await backend.enqueue_many(CTX, messages)
    for job_id, sent in zip(ids, messages, strict=True):
        assert (await backend.get_job(CTX, job_id)).message.payload_bytes == sent.payload_bytes
    assert await backend.enqueue_many(CTX, []) == []


async def test_dequeue_many_leases_in_dequeue_order(backend: Backend) -> None:
    ids = await backend.enqueue_many(CTX, [message() for _ in range(5)])
    leases = await backend.dequeue_many(CTX, ["default"], 3)
    assert [lease.job_id for lease in leases] == ids[:3]
    rest = await backend.dequeue_many(CTX, ["default"], 10)
    assert [lease.job_id for lease in rest] == ids[3:]


async def test_release_gives_the_job_back_without_counting_the_attempt(
    backend: Backend,
) -> None:
    job_id = await backend.enqueue(CTX, message())
    first = await backend.dequeue(CTX, ["default"])
    assert first is not None
    await backend.release(CTX, first)
    info = await backend.get_job(CTX, job_id)
    assert info.status is JobStatus.ENQUEUED and info.attempts == 0
    second = await backend.dequeue(CTX, ["default"])
    assert second is not None and second.job_id == job_id
    assert second.attempt == 1
    assert second.lease_token > first.lease_token


async def test_priority_enum_is_ordered() -> None:
    assert JobPriority.HIGH > JobPriority.NORMAL > JobPriority.LOW
    assert JobStatus.COMPLETED.value == "completed"
    assert JobMessage(job_type="x", payload_bytes=b"").run_at is None
    assert datetime.now(UTC).tzinfo is UTC
