"""The projection tables are a checkpoint of the log: stamped with the position they
cover, brought forward a page at a time, and equal at every step to the fold of the log
up to that position; checkpoint + tail (the fold of the events after it) is the fold of
the whole log, however far behind the checkpoint is."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from dogqueue import Completion, Failure, FakeClock, JobMessage, JobStatus, QueueCtx, rebuild
from dogqueue.audit.verify import verify_log
from dogqueue.backend.sqlite import SqliteBackend, catchup
from dogqueue.backend.sqlite.catchup import catch_up_page, checkpoint_position
from dogqueue.backend.sqlite.connection import connect
from dogqueue.backend.sqlite.log import SqliteLogReader
from tests.integration.checkpoint_files import read_checkpoint

ACME, GLOBEX = QueueCtx("acme"), QueueCtx("globex")


def _message(after: tuple[str, ...] = (), key: str | None = None) -> JobMessage:
    return JobMessage(
        job_type="t", payload_bytes=b"{}", max_retries=0, after=after, idempotency_key=key
    )


async def _unchecked_story(path: Path, jobs: int) -> None:
    """Jobs of two tenants, some with parents and keys, leased, settled and canceled,
    written without any checkpoint (the backend's checkpointer is taken away)."""
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        backend.writer.projection_checkpointer = None
        for ctx in (ACME, GLOBEX):
            parents = await backend.enqueue_many(ctx, [_message() for _ in range(jobs)])
            await backend.enqueue_many(
                ctx,
                [_message((parent,), f"k{i}") for i, parent in enumerate(parents[:10])],
            )
            leases = await backend.dequeue_many(ctx, ["default"], jobs // 2)
            await backend.settle_many(
                ctx,
                [
                    Completion(lease=lease)
                    if i % 3
                    else Failure(lease=lease, error="x", retry=False)
                    for i, lease in enumerate(leases)
                ],
            )
            await backend.cancel_job(ctx, parents[-1])


async def test_fold_equals_checkpoint_plus_tail_at_every_step(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    await _unchecked_story(path, jobs=60)
    position, rows, events = read_checkpoint(path)
    assert position == 0 and rows == {}
    everything = rebuild(events)
    conn = connect(str(path), "NORMAL")
    log = SqliteLogReader(path)
    try:
        steps = 0
        while catch_up_page(conn, limit=37):  # pages that end inside jobs' histories
            steps += 1
            position, rows, _ = read_checkpoint(path)
            assert position == checkpoint_position(conn)
            assert rows == rebuild(e for e in events if e.seq <= position)
            assert {(j.tenant_id, j.job_id): j for j in await log.jobs()} == everything
            acme = {j.job_id for j in await log.jobs("acme")}
            assert acme == {job_id for tenant, job_id in everything if tenant == "acme"}
            assert (await verify_log(log)).ok  # rows, counts and edges with the tail
        assert steps > 5 and position == max(e.seq for e in events)
        assert rows == everything
    finally:
        conn.close()
        await log.close()


async def test_a_checkpoint_far_behind_opens_and_catches_up(tmp_path: Path) -> None:
    """bench/sqlite_scale.py measures this at 1,000,000 events behind."""
    path = tmp_path / "q.db"
    await _unchecked_story(path, jobs=3_000)
    _, rows, events = read_checkpoint(path)
    assert rows == {} and len(events) > 10_000
    everything = rebuild(events)
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        lease = await backend.dequeue(ACME, ["default"])  # decided on the whole log
        assert lease is not None
        assert everything[("acme", lease.job_id)].status.value == "enqueued"
        await backend.ack_complete(ACME, lease)
        assert await backend.projected_jobs() == rebuild(await backend.read_events())
    position, rows, events = read_checkpoint(path)
    assert position == max(e.seq for e in events) and rows == rebuild(events)


async def test_checkpoints_written_from_memory_equal_the_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend writes its checkpoint from the jobs its memory saw change (refused
    units and rolled-back batches included): at each one, the rows are the fold of the
    log up to the position stamped."""
    monkeypatch.setattr(catchup, "CHECKPOINT_EVERY_EVENTS", 25)
    path = tmp_path / "q.db"
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        checkpointer = backend.writer.projection_checkpointer
        assert checkpointer is not None
        for round_ in range(6):
            ids = await backend.enqueue_many(
                ACME, [_message(key=f"r{round_}-{i}") for i in range(12)]
            )
            leases = await backend.dequeue_many(ACME, ["default"], 8)
            stale = leases[0]
            results = await backend.settle_many(
                ACME, [Completion(lease=lease) for lease in leases] + [Completion(lease=stale)]
            )
            assert not isinstance(results[-1], JobStatus)  # refused: settled already
            await backend.cancel_job(ACME, ids[-1])
            await asyncio.to_thread(checkpointer.wait)
            position, rows, events = read_checkpoint(path)
            assert rows == rebuild(e for e in events if e.seq <= position)
        assert checkpointer.written_from_memory >= 3


async def test_an_idle_process_checkpoints_once_its_events_are_due_by_time(
    tmp_path: Path,
) -> None:
    """Fewer events than a checkpoint waits for, then no commit: the writer's timer is
    armed for CHECKPOINT_EVERY_SECONDS by the backend's clock, and its check writes the
    checkpoint once that much time passed (not before)."""
    path, clock = tmp_path / "q.db", FakeClock()
    async with SqliteBackend(path, clock=clock) as backend:
        writer = backend.writer
        checkpointer = writer.projection_checkpointer
        assert checkpointer is not None
        await backend.enqueue_many(ACME, [_message() for _ in range(5)])
        timer = writer._idle_timer
        assert timer is not None
        loop = asyncio.get_running_loop()
        assert timer.when() - loop.time() == pytest.approx(catchup.CHECKPOINT_EVERY_SECONDS, 0.1)
        await writer.checkpoint_if_due()  # not due yet by the clock
        await asyncio.to_thread(checkpointer.wait)
        assert read_checkpoint(path).position == 0
        clock.advance(timedelta(seconds=catchup.CHECKPOINT_EVERY_SECONDS))
        await writer.checkpoint_if_due()
        await asyncio.to_thread(checkpointer.wait)
        position, rows, events = read_checkpoint(path)
        assert position == max(e.seq for e in events) == 5 and rows == rebuild(events)
        assert checkpointer.seconds_until_due() is None  # nothing left: no timer again
