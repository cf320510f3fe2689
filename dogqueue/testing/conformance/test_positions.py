"""Positions on every backend: what a tenant sees is its own dense positions, the same
whatever other tenants do; the global readers and the log reader use log positions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from dogqueue import FakeClock, QueueCtx, fold
from dogqueue.backend.contract import Backend
from dogqueue.log import archive as archival
from dogqueue.log.chain import GENESIS, chain_hash
from dogqueue.testing.conformance.fixtures import MakeBackend

from .helpers import message

A, B = QueueCtx("tenant-a"), QueueCtx("tenant-b")


async def tenant_a_story(
    backend: Backend, clock: FakeClock, noise: Callable[[], Awaitable[None]] | None = None
) -> list[str]:
    """The same work for tenant A; `noise` (other tenants' writes) runs between steps."""

    async def step() -> None:
        if noise is not None:
            await noise()

    ids = []
    for index in range(4):
        await step()
        ids.append(await backend.enqueue(A, message(queue="mail" if index % 2 else "default")))
    await step()
    lease = await backend.dequeue(A, ["default", "mail"])
    assert lease is not None
    await step()
    await backend.ack_fail(A, lease, "boom")
    await step()
    clock.advance(timedelta(seconds=5))
    second = await backend.dequeue(A, ["default", "mail"])
    assert second is not None
    await step()
    await backend.ack_complete(A, second)
    await step()
    await backend.cancel_job(A, ids[3])
    return ids


View = list[tuple[list[tuple[int, str, int]], int]]


async def view_of_a(backend: Backend, ids: list[str]) -> View:
    """Everything tenant A is shown about its jobs, with ids replaced by their index."""
    seen: View = []
    for job_id in ids:
        history = await backend.history(A, job_id)
        job = await backend.get_job(A, job_id)
        assert fold(history) == job
        seen.append(([(e.seq, e.type, e.version) for e in history], job.enqueue_seq))
    return seen


async def test_history_positions_are_dense_per_tenant(backend: Backend, clock: FakeClock) -> None:
    async def noise() -> None:
        await backend.enqueue(B, message())
        lease = await backend.dequeue(B, ["default"])
        assert lease is not None
        await backend.ack_complete(B, lease)

    ids = await tenant_a_story(backend, clock, noise)
    positions = sorted([e.seq for job_id in ids for e in await backend.history(A, job_id)])
    assert positions == list(range(1, len(positions) + 1))
    enqueued = [(await backend.get_job(A, job_id)).enqueue_seq for job_id in ids]
    assert enqueued == sorted(enqueued) and enqueued[0] == 1


async def test_a_tenants_positions_do_not_depend_on_other_tenants(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    async with make_backend() as alone:
        quiet = await view_of_a(alone, await tenant_a_story(alone, clock))

    async with make_backend() as busy:
        count = 0

        async def noise() -> None:
            nonlocal count
            count += 1
            for _ in range(count % 3 + 1):
                await busy.enqueue(B, message())
            if count % 2:
                lease = await busy.dequeue(B, ["default"])
                assert lease is not None
                await busy.ack_fail(B, lease, "other tenant's failure")

        busy_view = await view_of_a(busy, await tenant_a_story(busy, clock, noise))
        # The other tenant's writes did move the log positions.
        assert len(await busy.read_events()) > sum(len(h) for h, _ in busy_view)

    assert busy_view == quiet


async def test_global_readers_use_dense_log_positions(backend: Backend, clock: FakeClock) -> None:
    async def noise() -> None:
        await backend.enqueue(B, message())

    await tenant_a_story(backend, clock, noise)
    events = await backend.read_events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    log = backend.log_reader()
    try:
        records = await log.records()
        assert [r.pos for r in records] == [e.seq for e in events]
        assert await log.last_position() == len(records)
        assert await log.unsealed() == []
        assert [e.seq for e in await log.events(after=3, limit=4)] == [4, 5, 6, 7]
        for ctx in (A, B):
            mine = [r for r in records if r.tenant_id == ctx.tenant_id]
            assert [r.tpos for r in mine] == list(range(1, len(mine) + 1))
            assert [e.seq for e in await log.tenant_events(ctx.tenant_id)] == [r.tpos for r in mine]
        projected = await backend.projected_jobs()
        assert {(j.tenant_id, j.job_id): j for j in await log.jobs()} == projected
        for job in await log.jobs(A.tenant_id):
            assert job == await backend.get_job(A, job.job_id)
    finally:
        await log.close()


async def test_the_chain_is_readable_and_recomputes(backend: Backend, clock: FakeClock) -> None:
    async def noise() -> None:
        await backend.enqueue(B, message())

    await tenant_a_story(backend, clock, noise)
    log = backend.log_reader()
    try:
        previous: dict[str, bytes] = {}
        heads: dict[str, tuple[int, bytes]] = {}
        for record in await log.records():
            assert record.hash == chain_hash(
                previous.get(record.tenant_id, GENESIS), record.pos, record.data
            )
            previous[record.tenant_id] = record.hash
            heads[record.tenant_id] = (record.pos, record.hash)
        assert await log.chain_heads() == heads
        assert await archival.anchors(log) == [] and await archival.archived_ranges(log) == []
        assert await archival.integrity_problems(log) == []
    finally:
        await log.close()


async def test_a_snapshot_does_not_see_later_writes(backend: Backend, clock: FakeClock) -> None:
    await backend.enqueue(A, message())
    log = backend.log_reader()
    try:
        async with log.snapshot():
            before = await log.records()
            await backend.enqueue(A, message())
            assert await log.records() == before
            assert len(await log.jobs()) == 1
        assert len(await log.records()) == len(before) + 1
    finally:
        await log.close()
