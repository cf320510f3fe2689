"""Idempotency keys and tenant isolation."""

from __future__ import annotations

import pytest

from dogqueue import JobAlreadyExists, JobNotFound, JobStatus, QueueCtx
from dogqueue.backend.contract import Backend

from .helpers import log_size, message

A = QueueCtx("tenant-a")
B = QueueCtx("tenant-b")


async def test_a_repeated_key_is_refused_with_the_existing_job(backend: Backend) -> None:
    job_id = await backend.enqueue(A, message(idempotency_key="order-1"))
    before = await log_size(backend)
    with pytest.raises(JobAlreadyExists) as raised:
        await backend.enqueue(A, message(idempotency_key="order-1"))
    assert raised.value.job_id == job_id
    assert await log_size(backend) == before


async def test_a_key_stays_taken_after_the_job_finishes(backend: Backend) -> None:
    job_id = await backend.enqueue(A, message(idempotency_key="order-1"))
    lease = await backend.dequeue(A, ["default"])
    assert lease is not None
    await backend.ack_complete(A, lease)
    with pytest.raises(JobAlreadyExists) as raised:
        await backend.enqueue(A, message(idempotency_key="order-1"))
    assert raised.value.job_id == job_id


async def test_the_same_key_in_another_tenant_is_independent(backend: Backend) -> None:
    a = await backend.enqueue(A, message(idempotency_key="order-1"))
    b = await backend.enqueue(B, message(idempotency_key="order-1"))
    assert a != b


async def test_a_batch_holding_an_existing_key_appends_nothing(backend: Backend) -> None:
    existing = await backend.enqueue(A, message(idempotency_key="k2"))
    before = await log_size(backend)
    batch = [message(idempotency_key="k1"), message(), message(idempotency_key="k2")]
    with pytest.raises(JobAlreadyExists) as raised:
        await backend.enqueue_many(A, batch)
    assert raised.value.job_id == existing
    assert await log_size(backend) == before
    await backend.enqueue(A, message(idempotency_key="k1"))  # k1 was not taken


async def test_another_tenants_job_is_unknown_to_every_method(backend: Backend) -> None:
    job_id = await backend.enqueue(A, message())
    lease = await backend.dequeue(A, ["default"])
    assert lease is not None
    before = await log_size(backend)
    calls = [
        backend.get_job(B, job_id),
        backend.get_status(B, job_id),
        backend.history(B, job_id),
        backend.cancel_job(B, job_id),
        backend.retry_job(B, job_id),
        backend.heartbeat(B, lease),
        backend.ack_complete(B, lease),
        backend.ack_fail(B, lease, "x"),
        backend.release(B, lease),
    ]
    for call in calls:
        with pytest.raises(JobNotFound):
            await call
    for unknown in ("no-such-job", "00000000-0000-7000-8000-000000000000", ""):
        with pytest.raises(JobNotFound):
            await backend.get_job(A, unknown)
        with pytest.raises(JobNotFound):
            await backend.cancel_job(A, unknown)
    assert await log_size(backend) == before
    assert await backend.get_status(A, job_id) is JobStatus.LEASED


async def test_dequeue_only_sees_the_callers_tenant(backend: Backend) -> None:
    await backend.enqueue(A, message())
    assert await backend.dequeue(B, ["default"]) is None
    assert await backend.dequeue(A, ["default"]) is not None
