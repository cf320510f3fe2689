"""Leasing in dequeue order, including when many leases, enqueues and cancels share one
transaction (a writer that reads ready jobs ahead, as SQLite's does, must keep that list
exact)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dogqueue import FakeClock, JobMessage, JobPriority, JobStatus, QueueCtx, rebuild
from dogqueue.backend.contract import Backend
from dogqueue.testing.conformance.fixtures import MakeBackend

CTX = QueueCtx("tenant-a")


def message(queue: str = "default", priority: JobPriority = JobPriority.NORMAL) -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}", queue=queue, priority=priority)


async def assert_projection_is_fold(backend: Backend) -> None:
    assert await backend.projected_jobs() == rebuild(await backend.read_events())


async def test_dequeue_many_in_chunks_follows_priority_then_run_at_then_fifo(
    backend: Backend, clock: FakeClock
) -> None:
    expected: list[tuple[int, object, int, str]] = []
    for index in range(45):
        priority = JobPriority(index % 3)
        queue = ("a", "b", "c")[index % 2 + (index % 5 == 0)]
        run_at = clock() + timedelta(seconds=(45 - index) % 7)
        msg = JobMessage(
            job_type="t", payload_bytes=b"{}", queue=queue, priority=priority, run_at=run_at
        )
        job_id = await backend.enqueue(CTX, msg)
        expected.append((-priority, run_at, index, job_id))
    clock.advance(timedelta(seconds=10))
    expected.sort()

    leased: list[str] = []
    for size in (1, 2, 3, 5, 8, 13, 40):
        leased += [lease.job_id for lease in await backend.dequeue_many(CTX, ["a", "b", "c"], size)]

    assert leased == [job_id for *_, job_id in expected]
    assert await backend.dequeue(CTX, ["a", "b", "c"]) is None
    await assert_projection_is_fold(backend)


async def test_dequeue_skips_jobs_not_due_and_other_queues(
    backend: Backend, clock: FakeClock
) -> None:
    later = JobMessage(job_type="t", payload_bytes=b"{}", run_at=clock() + timedelta(minutes=1))
    await backend.enqueue(CTX, later)
    other = await backend.enqueue(CTX, message(queue="other"))
    due = [await backend.enqueue(CTX, message()) for _ in range(6)]

    leases = await backend.dequeue_many(CTX, ["default"], 10)

    assert [lease.job_id for lease in leases] == due
    assert await backend.get_status(CTX, other) is JobStatus.ENQUEUED


async def test_units_sharing_one_commit_see_each_others_writes(
    make_backend: MakeBackend,
) -> None:
    async with make_backend() as backend:
        first = [await backend.enqueue(CTX, message()) for _ in range(10)]

        # Called together, so a batching writer runs them in one transaction, in order.
        lone, canceled, urgent_id, after = await asyncio.gather(
            backend.dequeue_many(CTX, ["default"], 1),
            backend.cancel_job(CTX, first[2]),  # inside the read-ahead list, not its head
            backend.enqueue(CTX, message(priority=JobPriority.HIGH)),
            backend.dequeue_many(CTX, ["default"], 4),
        )

        assert [lease.job_id for lease in lone] == first[:1]
        assert canceled is JobStatus.CANCELED
        assert [lease.job_id for lease in after] == [urgent_id, first[1], *first[3:5]]
        await assert_projection_is_fold(backend)


async def test_lease_then_cancel_of_the_head_in_one_commit(make_backend: MakeBackend) -> None:
    async with make_backend() as backend:
        first = [await backend.enqueue(CTX, message()) for _ in range(6)]
        _, canceled, leases = await asyncio.gather(
            backend.dequeue_many(CTX, ["default"], 1),
            backend.cancel_job(CTX, first[1]),  # the next head of the read-ahead list
            backend.dequeue_many(CTX, ["default"], 2),
        )
        assert canceled is JobStatus.CANCELED
        assert [lease.job_id for lease in leases] == first[2:4]
        await assert_projection_is_fold(backend)


async def test_tenants_and_queue_sets_interleaved_in_one_commit(
    make_backend: MakeBackend,
) -> None:
    other = QueueCtx("tenant-b")
    async with make_backend() as backend:
        ours = [await backend.enqueue(CTX, message(queue="a")) for _ in range(4)]
        ours += [await backend.enqueue(CTX, message(queue="b")) for _ in range(4)]
        theirs = [await backend.enqueue(other, message(queue="a")) for _ in range(4)]

        batches = await asyncio.gather(
            backend.dequeue_many(CTX, ["a", "b"], 2),
            backend.dequeue_many(other, ["a"], 1),
            backend.dequeue_many(CTX, ["b"], 2),
            backend.dequeue_many(CTX, ["a", "b"], 3),
            backend.dequeue_many(other, ["a"], 5),
        )

        leased = [[lease.job_id for lease in batch] for batch in batches]
        assert leased == [
            ours[0:2],
            theirs[0:1],
            ours[4:6],
            [ours[2], ours[3], ours[6]],
            theirs[1:],
        ]
        await assert_projection_is_fold(backend)
