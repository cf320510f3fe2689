"""settle_many: many acknowledgements in one transaction, each fenced on its own."""

from __future__ import annotations

import msgspec
import pytest

from dogqueue import (
    Completion,
    Failure,
    InvalidInput,
    JobCanceled,
    JobNotFound,
    JobStatus,
    LeaseLost,
    QueueCtx,
)
from dogqueue.backend.contract import Backend

from .helpers import log_size, message

replace = msgspec.structs.replace

CTX = QueueCtx("tenant-a")
OTHER = QueueCtx("tenant-b")


async def test_completions_and_failures_settle_together(backend: Backend) -> None:
    await backend.enqueue_many(CTX, [message(max_retries=1), message(max_retries=0)] * 2)
    leases = await backend.dequeue_many(CTX, ["default"], 4)
    before = await log_size(backend)
    results = await backend.settle_many(
        CTX,
        [
            Completion(lease=leases[0], result=b"42"),
            Failure(lease=leases[1], error="boom", retry=True),
            Completion(lease=leases[2]),
            Failure(lease=leases[3], error="boom", retry=True),
        ],
    )
    assert results == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.FAILED]
    assert await log_size(backend) == before + 4
    assert (await backend.get_job(CTX, leases[0].job_id)).result == b"42"
    failed = await backend.get_job(CTX, leases[1].job_id)
    assert failed.last_error == "boom"


async def test_a_retry_is_scheduled_like_ack_fail(backend: Backend) -> None:
    job_id = await backend.enqueue(CTX, message(max_retries=2))
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    assert await backend.settle_many(CTX, [Failure(lease=lease, error="again")]) == [
        JobStatus.ENQUEUED
    ]
    assert (await backend.get_job(CTX, job_id)).attempts == 1


async def test_a_refused_job_does_not_refuse_the_others(backend: Backend) -> None:
    """Fencing and cancel-wins hold per job: the stale, the canceled, another tenant's
    and the unknown job get their errors and append nothing; the valid ones commit."""
    await backend.enqueue_many(CTX, [message() for _ in range(4)])
    foreign_id = await backend.enqueue(OTHER, message())
    leases = await backend.dequeue_many(CTX, ["default"], 4)
    foreign = await backend.dequeue(OTHER, ["default"])
    assert foreign is not None
    await backend.cancel_job(CTX, leases[1].job_id)
    stale = replace(leases[2], lease_token=leases[2].lease_token - 1)
    unknown = replace(leases[3], job_id="00000000-0000-7000-8000-000000000000")
    before = await log_size(backend)
    results = await backend.settle_many(
        CTX,
        [
            Completion(lease=leases[0]),
            Completion(lease=leases[1]),
            Failure(lease=stale, error="late"),
            Completion(lease=foreign),
            Completion(lease=unknown),
            Completion(lease=leases[3]),
        ],
    )
    assert results[0] is JobStatus.COMPLETED
    assert isinstance(results[1], JobCanceled)
    assert isinstance(results[2], LeaseLost)
    assert isinstance(results[3], JobNotFound)
    assert isinstance(results[4], JobNotFound)
    assert results[5] is JobStatus.COMPLETED
    assert await log_size(backend) == before + 2
    assert await backend.get_status(CTX, leases[1].job_id) is JobStatus.CANCELED
    assert await backend.get_status(CTX, leases[2].job_id) is JobStatus.LEASED
    assert await backend.get_status(OTHER, foreign_id) is JobStatus.LEASED


async def test_the_same_lease_twice_settles_once(backend: Backend) -> None:
    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    results = await backend.settle_many(CTX, [Completion(lease=lease), Completion(lease=lease)])
    assert results[0] is JobStatus.COMPLETED
    assert isinstance(results[1], LeaseLost)
    history = await backend.history(CTX, lease.job_id)
    assert [event.type for event in history].count("completed") == 1


async def test_malformed_input_settles_nothing(backend: Backend) -> None:
    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    before = await log_size(backend)
    bad: list[object] = [
        "not a list",
        [Completion(lease=lease), "not a settlement"],
        [Completion(lease=lease), Completion(lease="no lease")],  # type: ignore[arg-type]
        [Completion(lease=lease), Completion(lease=lease, result="text")],  # type: ignore[arg-type]
        [Completion(lease=lease), Failure(lease=lease, error=42)],  # type: ignore[arg-type]
    ]
    for settlements in bad:
        with pytest.raises(InvalidInput):
            await backend.settle_many(CTX, settlements)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await backend.settle_many(QueueCtx(""), [Completion(lease=lease)])
    assert await backend.settle_many(CTX, []) == []
    assert await log_size(backend) == before
    assert await backend.get_status(CTX, lease.job_id) is JobStatus.LEASED


async def test_a_settled_batch_settles_the_jobs_waiting_for_it(backend: Backend) -> None:
    """A completion in a batch releases the job after it, a final failure cancels its
    dependent (and that one's), in the batch's own transaction; a worker waiting for
    work is woken by the release."""
    parents = await backend.enqueue_many(CTX, [message(), message(max_retries=0)])
    done_child, dead_child = await backend.enqueue_many(
        CTX, [message(after=(parents[0],)), message(after=(parents[1],))]
    )
    grandchild = await backend.enqueue(CTX, message(after=(dead_child,)))
    leases = await backend.dequeue_many(CTX, ["default"], 10)
    assert sorted(lease.job_id for lease in leases) == sorted(parents)  # the rest wait
    by_id = {lease.job_id: lease for lease in leases}
    results = await backend.settle_many(
        CTX,
        [
            Completion(lease=by_id[parents[0]]),
            Failure(lease=by_id[parents[1]], error="boom", retry=True),
        ],
    )
    assert results == [JobStatus.COMPLETED, JobStatus.FAILED]
    assert (await backend.get_job(CTX, done_child)).status is JobStatus.ENQUEUED
    for canceled in (dead_child, grandchild):
        job = await backend.get_job(CTX, canceled)
        assert job.status is JobStatus.CANCELED and job.last_error is not None
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None and lease.job_id == done_child
