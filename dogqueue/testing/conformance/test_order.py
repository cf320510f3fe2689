"""Dequeue order: priority, then run_at, then enqueue order; only due jobs."""

from __future__ import annotations

import random
from datetime import timedelta

from dogqueue import FakeClock, JobPriority, QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.core.order import dequeue_key

from .helpers import message

CTX = QueueCtx("tenant-a")


async def drain(backend: Backend, queues: list[str]) -> list[str]:
    order = []
    while (lease := await backend.dequeue(CTX, queues)) is not None:
        order.append(lease.job_id)
    return order


async def test_fifo_within_one_priority(backend: Backend) -> None:
    ids = [await backend.enqueue(CTX, message()) for _ in range(10)]
    assert await drain(backend, ["default"]) == ids


async def test_higher_priority_first(backend: Backend) -> None:
    low = await backend.enqueue(CTX, message(priority=JobPriority.LOW))
    normal = await backend.enqueue(CTX, message(priority=JobPriority.NORMAL))
    high = await backend.enqueue(CTX, message(priority=JobPriority.HIGH))
    assert await drain(backend, ["default"]) == [high, normal, low]


async def test_earlier_run_at_before_earlier_enqueue(backend: Backend, clock: FakeClock) -> None:
    later = await backend.enqueue(CTX, message(run_at=clock() - timedelta(seconds=1)))
    earlier = await backend.enqueue(CTX, message(run_at=clock() - timedelta(seconds=5)))
    assert await drain(backend, ["default"]) == [earlier, later]


async def test_scheduled_job_waits_for_its_run_at(backend: Backend, clock: FakeClock) -> None:
    job_id = await backend.enqueue(CTX, message(run_at=clock() + timedelta(minutes=10)))
    assert await backend.dequeue(CTX, ["default"]) is None
    assert await backend.next_run_at(["default"]) == clock() + timedelta(minutes=10)
    clock.advance(timedelta(minutes=9, seconds=59))
    assert await backend.dequeue(CTX, ["default"]) is None
    clock.advance(timedelta(seconds=1))
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None and lease.job_id == job_id


async def test_a_future_high_priority_job_does_not_block_due_ones(
    backend: Backend, clock: FakeClock
) -> None:
    await backend.enqueue(
        CTX, message(priority=JobPriority.HIGH, run_at=clock() + timedelta(hours=1))
    )
    due = await backend.enqueue(CTX, message(priority=JobPriority.LOW))
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None and lease.job_id == due


async def test_order_across_several_queues(backend: Backend, clock: FakeClock) -> None:
    a1 = await backend.enqueue(CTX, message(queue="a"))
    b1 = await backend.enqueue(CTX, message(queue="b", priority=JobPriority.HIGH))
    a2 = await backend.enqueue(CTX, message(queue="a"))
    c1 = await backend.enqueue(CTX, message(queue="c", priority=JobPriority.HIGH))
    b2 = await backend.enqueue(CTX, message(queue="b"))
    assert await drain(backend, ["a", "b"]) == [b1, a1, a2, b2]
    assert await drain(backend, ["c"]) == [c1]


async def test_ready_tenants_and_next_run_at(backend: Backend, clock: FakeClock) -> None:
    await backend.enqueue(QueueCtx("t1"), message())
    await backend.enqueue(QueueCtx("t2"), message(run_at=clock() + timedelta(minutes=1)))
    await backend.enqueue(QueueCtx("t3"), message(queue="other"))
    assert await backend.ready_tenants(["default"]) == ["t1"]
    assert await backend.next_run_at(["default"], ["t2"]) == clock() + timedelta(minutes=1)
    assert await backend.next_run_at(["default"], ["t3"]) is None
    clock.advance(timedelta(minutes=1))
    assert await backend.ready_tenants(["default"]) == ["t1", "t2"]
    assert await backend.ready_tenants(["default", "other"]) == ["t1", "t2", "t3"]


async def test_every_backend_leases_in_the_order_of_dequeue_key(
    backend: Backend, clock: FakeClock
) -> None:
    """The one definition of the order (dogqueue.core.order.dequeue_key) is the order
    every backend leases by, across priorities, run_at ties and released jobs; one
    queue at a time and with dequeue_many."""
    rng = random.Random(15)
    start = clock()
    messages = [
        message(
            priority=rng.choice(list(JobPriority)),
            run_at=start - timedelta(seconds=rng.randrange(4)),
        )
        for _ in range(30)
    ]
    ids = [await backend.enqueue(CTX, m) for m in messages[:20]]
    ids += await backend.enqueue_many(CTX, messages[20:])
    # A released job keeps its place by key.
    first = await backend.dequeue(CTX, ["default"])
    assert first is not None
    await backend.release(CTX, first)
    jobs = [await backend.get_job(CTX, job_id) for job_id in ids]
    expected = [job.job_id for job in sorted(jobs, key=dequeue_key)]
    leased = [lease.job_id for lease in await backend.dequeue_many(CTX, ["default"], 7)]
    assert leased + await drain(backend, ["default"]) == expected
