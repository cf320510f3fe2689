"""Opening a SQLite file reads its checkpoint lazily: no job's state is decoded at open,
the checkpoint's indexes are read a page at a time as keys, and a job is decoded when a
unit reads it. The answers are those of the fold of the log at every step: each job is
as memory holds it, or (when memory does not) as its checkpoint row says."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from dogqueue import Completion, FakeClock, JobMessage, JobPriority, QueueCtx, rebuild
from dogqueue.backend.sqlite import SqliteBackend, catchup, projection, writer
from dogqueue.core.events import AnyEvent
from dogqueue.core.order import dequeue_key, is_ready
from dogqueue.core.status import JobStatus
from tests.integration.checkpoint_files import read_checkpoint

ACME, GLOBEX = QueueCtx("acme"), QueueCtx("globex")
QUEUES = ("a", "b")
LEASE = timedelta(minutes=10)


def _message(
    queue: str = "a",
    priority: JobPriority = JobPriority.NORMAL,
    after: tuple[str, ...] = (),
    **options: object,
) -> JobMessage:
    return JobMessage(
        job_type="t",
        payload_bytes=b"{}",
        queue=queue,
        priority=priority,
        after=after,
        max_retries=3,
        **options,  # type: ignore[arg-type]
    )


async def _live_story(path: Path, clock: FakeClock) -> None:
    """Live jobs of two tenants in two queues at three priorities, many of one run_at
    (one enqueue_many), some scheduled later, some leased with waiting dependents;
    closed, so the checkpoint covers all of it."""
    async with SqliteBackend(path, clock=clock) as backend:
        for ctx in (ACME, GLOBEX):
            await backend.enqueue_many(
                ctx,
                [_message(QUEUES[i % 2], JobPriority(i % 3)) for i in range(60)],
            )
            clock.advance(timedelta(seconds=1))
            await backend.enqueue_many(
                ctx, [_message(run_at=clock() + timedelta(hours=1)) for _ in range(10)]
            )
            await backend.enqueue_many(ctx, [_message("b", JobPriority.HIGH) for _ in range(8)])
            parents = await backend.dequeue_many(ctx, ["b"], 8, lease_duration=LEASE)
            await backend.enqueue_many(
                ctx, [_message("a", after=(lease.job_id,)) for lease in parents]
            )
            clock.advance(timedelta(seconds=1))


def _memory_over_checkpoint_is_the_fold(backend: SqliteBackend, path: Path) -> None:
    """Every job is as memory holds it, or ended, or as its checkpoint row says."""
    _, rows, events = read_checkpoint(path)
    held = backend.writer.projection
    assert held.position == max(e.seq for e in events)
    for key, job in rebuild(events).items():
        if key in held.jobs:
            assert held.jobs[key] == job
        elif key in held.ended_at:
            assert job.status.is_terminal
        else:
            assert rows.get(key) == job, key


def _next_ready(events: list[AnyEvent], tenant: str, now: datetime, n: int) -> list[str]:
    """The first `n` ready jobs of a tenant's queues in dequeue order, by the fold."""
    jobs = [
        job
        for job in rebuild(events).values()
        if job.tenant_id == tenant and job.message.queue in QUEUES and is_ready(job, now)
    ]
    return [job.job_id for job in sorted(jobs, key=dequeue_key)[:n]]


async def _drain(
    backend: SqliteBackend, path: Path, clock: FakeClock, batch: int, *, flush: bool
) -> None:
    """Lease and complete every ready job of both tenants, `batch` at a time, checking
    each lease against the fold and memory over the checkpoint after each batch;
    `flush`: the checkpoint is brought up after each batch (it moves under the memory)."""
    for ctx, tenant in ((ACME, "acme"), (GLOBEX, "globex")):
        while True:
            expected = _next_ready(await backend.read_events(), tenant, clock(), batch)
            leases = await backend.dequeue_many(ctx, list(QUEUES), batch)
            assert [lease.job_id for lease in leases] == expected
            if not leases:
                break
            await backend.settle_many(ctx, [Completion(lease=lease) for lease in leases])
            _memory_over_checkpoint_is_the_fold(backend, path)
            if flush:
                # Ended jobs are forgotten once a checkpoint covers them.
                assert len(backend.writer.projection.ended_at) <= 3 * batch
                await backend.flush_checkpoint()


async def test_an_opening_decodes_no_job(tmp_path: Path) -> None:
    path, clock = tmp_path / "q.db", FakeClock()
    await _live_story(path, clock)
    async with SqliteBackend(path, clock=clock) as backend:
        held = backend.writer.projection
        assert held.loaded and held.jobs == {} and not held.children
        assert held.cold_queues == {(t, q) for t in ("acme", "globex") for q in QUEUES}
        assert held.cold_lease_tenants == {"acme", "globex"}
        lease = await backend.dequeue(ACME, list(QUEUES))
        assert lease is not None
        assert list(held.jobs) == [("acme", lease.job_id)]  # only the job leased
        assert not held.ready and not held.scheduled  # nothing indexed but that lease
        assert list(held.leases) == ["acme"]


async def test_a_lazy_opening_answers_as_the_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projection, "COLD_PAGE", 3)  # many pages, ends inside a run_at
    monkeypatch.setattr(projection, "LET_GO_AT", 5)
    path, clock = tmp_path / "q.db", FakeClock()
    await _live_story(path, clock)
    async with SqliteBackend(path, clock=clock) as backend:
        assert set(await backend.ready_tenants(list(QUEUES))) == {"acme", "globex"}
        assert await backend.next_run_at(list(QUEUES)) is not None
        await _drain(backend, path, clock, 7, flush=True)
        # The leases of the checkpoint expire; their dependents wait on.
        clock.advance(timedelta(hours=2))
        assert await backend.reap_expired() == 16
        _memory_over_checkpoint_is_the_fold(backend, path)
        clock.advance(timedelta(hours=2))  # past the retries' backoff
        # Completing a parent enqueues its dependent (an edge of the checkpoint).
        await _drain(backend, path, clock, 5, flush=False)
        folded = rebuild(await backend.read_events())
        assert {job.status for job in folded.values()} == {JobStatus.COMPLETED}
        assert await backend.next_run_at(list(QUEUES)) is None
    position, rows, events = read_checkpoint(path)
    assert position == max(e.seq for e in events) and rows == rebuild(events)


async def test_a_checkpoint_far_behind_is_brought_up_before_the_opening_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its tail goes into the tables, not into memory."""
    monkeypatch.setattr(writer, "FAR_BEHIND", 10)
    path, clock = tmp_path / "q.db", FakeClock()
    async with SqliteBackend(path, clock=clock) as backend:
        backend.writer.projection_checkpointer = None  # no checkpoint written
        await backend.enqueue_many(ACME, [_message() for _ in range(30)])
        leases = await backend.dequeue_many(ACME, ["a"], 10)
        await backend.settle_many(ACME, [Completion(lease=lease) for lease in leases])
    position, rows, events = read_checkpoint(path)
    assert position == 0 and not rows
    async with SqliteBackend(path, clock=clock) as backend:
        position, rows, events = read_checkpoint(path)
        assert position == max(e.seq for e in events) and rows == rebuild(events)
        held = backend.writer.projection
        assert held.jobs == {} and held.position == position
        leases = await backend.dequeue_many(ACME, ["a"], 30)
        assert len(leases) == 20


async def test_a_rolled_back_unit_gives_back_the_checkpoint_entries_it_passed(
    tmp_path: Path,
) -> None:
    """A unit leases a job of the checkpoint, then passes its (now stale) entry; once
    rolled back, the job is the queue's head again."""
    path, clock = tmp_path / "q.db", FakeClock()
    async with SqliteBackend(path, clock=clock) as backend:
        first, second = await backend.enqueue_many(ACME, [_message(), _message()])
    async with SqliteBackend(path, clock=clock) as backend:

        def lease_then_roll_back(held: projection.LogProjection) -> list[str]:
            now = clock()
            held.begin()
            job = held.next_ready("acme", ("a",), now)
            assert job is not None
            leased = msgspec.structs.replace(
                job, status=JobStatus.LEASED, version=job.version + 1, lease_expires_at=now
            )
            held.save(job, leased)
            after = held.next_ready("acme", ("a",), now)  # passes the stale entry
            assert after is not None
            held.rollback()
            again = held.next_ready("acme", ("a",), now)
            assert again is not None
            return [job.job_id, after.job_id, again.job_id]

        assert await backend.writer.read(lease_then_roll_back) == [first, second, first]


async def test_index_pages_are_read_again_once_ended_jobs_are_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page read before a job ended may still list it as enqueued: once the ends a
    checkpoint covers are forgotten, the pages are read again from the checkpoint."""
    monkeypatch.setattr(projection, "LET_GO_AT", 1)
    path, clock = tmp_path / "q.db", FakeClock()
    async with SqliteBackend(path, clock=clock) as backend:
        first, second = await backend.enqueue_many(ACME, [_message(), _message()])
    async with SqliteBackend(path, clock=clock) as backend:
        lease = await backend.dequeue(ACME, ["a"])  # its page lists both
        assert lease is not None and lease.job_id == first
        await backend.ack_complete(ACME, lease)
        await backend.flush_checkpoint()
        other = await backend.enqueue(ACME, _message("c"))
        await backend.cancel_job(ACME, other)  # a commit that forgets `first`'s end
        assert ("acme", first) not in backend.writer.projection.ended_at
        lease = await backend.dequeue(ACME, ["a"])
        assert lease is not None and lease.job_id == second


async def test_jobs_a_checkpoint_covers_leave_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process's own jobs stay in memory only until a checkpoint holds them as they
    are; it still leases them in dequeue order, from the checkpoint's index."""
    monkeypatch.setattr(projection, "LET_GO_AT", 10)
    monkeypatch.setattr(catchup, "CHECKPOINT_EVERY_EVENTS", 20)
    path, clock = tmp_path / "q.db", FakeClock()
    async with SqliteBackend(path, clock=clock) as backend:
        held, checkpointer = backend.writer.projection, backend.writer.projection_checkpointer
        assert checkpointer is not None
        # Hold the checkpointer's thread: a checkpoint written before the commit's
        # caller looks would already have let the jobs go.
        gate = threading.Event()
        checkpointer._executor.submit(gate.wait)
        first = await backend.enqueue_many(
            ACME, [_message(priority=JobPriority(i % 3)) for i in range(30)]
        )
        assert len(held.jobs) == 30
        gate.set()
        await asyncio.to_thread(checkpointer.wait)  # written from memory
        last = await backend.enqueue(ACME, _message())
        assert list(held.jobs) == [("acme", last)]
        indexed = [
            e.job_id for index in (held.ready, held.scheduled) for es in index.values() for e in es
        ]
        assert indexed == [last]
        _memory_over_checkpoint_is_the_fold(backend, path)
        expected = _next_ready(await backend.read_events(), "acme", clock(), 31)
        assert set(expected) == {*first, last}
        leases = await backend.dequeue_many(ACME, ["a"], 31)
        assert [lease.job_id for lease in leases] == expected
