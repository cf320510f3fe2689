"""The log is the truth: projections equal the fold of the log, for any workload."""

from __future__ import annotations

import random
from datetime import timedelta

import msgspec

from dogqueue import FakeClock, JobPriority, QueueCtx, fold, rebuild
from dogqueue.backend.contract import Backend

from .helpers import message

TENANTS = [QueueCtx(f"tenant-{i}") for i in range(3)]


async def varied_workload(backend: Backend, clock: FakeClock, jobs: int, seed: int) -> None:
    """Enqueue `jobs` jobs, then lease, complete, fail, cancel, heartbeat, expire and
    release them in a seeded random mix."""
    rng = random.Random(seed)
    ids: dict[QueueCtx, list[str]] = {ctx: [] for ctx in TENANTS}
    for n in range(jobs):
        ctx = rng.choice(TENANTS)
        msg = message(
            queue=rng.choice(["default", "mail"]),
            priority=rng.choice(list(JobPriority)),
            max_retries=rng.randint(0, 3),
            run_at=clock() + timedelta(seconds=rng.randint(-5, 5)),
            idempotency_key=f"key-{n}" if rng.random() < 0.3 else None,
        )
        ids[ctx].append(await backend.enqueue(ctx, msg))
    for _ in range(jobs):
        ctx = rng.choice(TENANTS)
        action = rng.random()
        if action < 0.05 and ids[ctx]:
            await backend.cancel_job(ctx, rng.choice(ids[ctx]))
            continue
        if action < 0.1:
            clock.advance(timedelta(seconds=rng.randint(1, 120)))
            await backend.reap_expired()
            continue
        lease = await backend.dequeue(
            ctx, ["default", "mail"], lease_duration=timedelta(seconds=rng.randint(5, 60))
        )
        if lease is None:
            clock.advance(timedelta(seconds=5))
            continue
        roll = rng.random()
        if roll < 0.1:
            await backend.heartbeat(ctx, lease)
        if roll < 0.55:
            await backend.ack_complete(ctx, lease, b"ok")
        elif roll < 0.85:
            await backend.ack_fail(ctx, lease, "boom", retry=roll < 0.8)
        elif roll < 0.9:
            await backend.release(ctx, lease)
        # else: abandoned, to expire later


async def assert_projection_is_the_fold_of_the_log(backend: Backend) -> None:
    live = await backend.projected_jobs()
    assert live == rebuild(await backend.read_events())
    for (tenant, job_id), job in live.items():
        # The tenant's view differs from the global one only in its positions.
        mine = await backend.get_job(QueueCtx(tenant), job_id)
        assert fold(await backend.history(QueueCtx(tenant), job_id)) == mine
        assert mine == msgspec.structs.replace(job, enqueue_seq=mine.enqueue_seq)


async def test_projection_equals_the_fold_after_a_varied_workload(
    backend: Backend, clock: FakeClock
) -> None:
    await varied_workload(backend, clock, jobs=1000, seed=7)
    live = await backend.projected_jobs()
    assert len(live) == 1000
    assert len({job.status for job in live.values()}) == 5  # every status reached
    await assert_projection_is_the_fold_of_the_log(backend)
    assert await backend.rebuild_projections() == len(await backend.read_events())
    assert await backend.projected_jobs() == live


async def test_rebuild_keeps_dequeue_order_and_keys(backend: Backend, clock: FakeClock) -> None:
    await varied_workload(backend, clock, jobs=200, seed=11)
    ctx = TENANTS[0]
    await backend.rebuild_projections()
    order = []
    clock.advance(timedelta(days=1))
    while (lease := await backend.dequeue(ctx, ["default", "mail"])) is not None:
        order.append(lease.job_id)
        await backend.ack_complete(ctx, lease)
    await assert_projection_is_the_fold_of_the_log(backend)
    assert len(order) == len(set(order))


async def test_read_events_pages_through_the_log(backend: Backend) -> None:
    for _ in range(10):
        await backend.enqueue(TENANTS[0], message())
    everything = await backend.read_events()
    assert [e.seq for e in everything] == sorted(e.seq for e in everything)
    page = await backend.read_events(after_seq=everything[3].seq, limit=4)
    assert page == everything[4:8]
