"""A lone caller's small unit commits on the event loop, without the writer thread,
within the call itself when nothing else is ready to run; calls made together still
share one commit on the thread; a unit that would wait for another connection's write
lock waits on the thread, never on the event loop; WAL checkpoints run on a thread of
their own; synchronous=FULL (an fsync per commit) never commits on the event loop; a lone
enqueue's error reaches its caller as a dogqueue error; and a lone commit starts a
checkpoint due by its transaction's time."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from dogqueue import FakeClock, JobMessage, QueueCtx, StorageError, rebuild
from dogqueue.backend.sqlite import SqliteBackend, catchup
from dogqueue.backend.sqlite.checkpointer import PAGES_PER_CHECKPOINT, PAGES_PER_COMMIT
from tests.integration.checkpoint_files import read_checkpoint

CTX = QueueCtx("tenant-a")
MESSAGE = JobMessage(job_type="t", payload_bytes=b"{}")


async def test_a_lone_caller_commits_on_the_event_loop(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "queue.db", clock=FakeClock()) as backend:
        inline = backend.writer.inline_commits
        job_id = await backend.enqueue(CTX, MESSAGE)
        [lease] = await backend.dequeue_many(CTX, ["default"], 1)
        await backend.ack_complete(CTX, lease)

        assert backend.writer.inline_commits == inline + 3
        assert lease.job_id == job_id
        assert await backend.projected_jobs() == rebuild(await backend.read_events())


async def test_a_lone_call_commits_without_suspending(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "queue.db", clock=FakeClock()) as backend:
        await backend.enqueue(CTX, MESSAGE)
        call = backend.enqueue(CTX, MESSAGE)
        with pytest.raises(StopIteration) as returned:
            call.send(None)  # one step: the call returns before the loop could turn

        job_id = returned.value.value
        assert (await backend.get_job(CTX, job_id)).job_id == job_id


async def test_calls_made_together_still_share_one_commit_on_the_thread(
    tmp_path: Path,
) -> None:
    async with SqliteBackend(tmp_path / "queue.db", clock=FakeClock()) as backend:
        await backend.enqueue(CTX, MESSAGE)
        commits, inline = backend.writer.commits, backend.writer.inline_commits

        await asyncio.gather(*(backend.enqueue(CTX, MESSAGE) for _ in range(20)))

        assert backend.writer.commits == commits + 1
        assert backend.writer.inline_commits == inline


async def test_the_wal_is_checkpointed_off_the_writers_path(tmp_path: Path) -> None:
    """The write connection never checkpoints; the checkpointer's thread does, every
    so many commits, so the WAL stays bounded however long a run of lone units lasts."""
    path = tmp_path / "queue.db"
    backend = SqliteBackend(path, clock=FakeClock())
    async with backend:
        autocheckpoint = await backend.writer.call(
            lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        lone_enqueues = PAGES_PER_CHECKPOINT // PAGES_PER_COMMIT * 2
        for _ in range(lone_enqueues):
            await backend.enqueue(CTX, MESSAGE)
        checkpointer = backend.writer.checkpointer
        assert checkpointer is not None
    assert autocheckpoint == 0
    assert checkpointer.checkpoints >= 1
    async with SqliteBackend(path, clock=FakeClock()) as again:
        assert len(await again.projected_jobs()) == lone_enqueues


async def test_a_unit_that_would_wait_for_the_lock_waits_on_the_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "queue.db"
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        await backend.enqueue(CTX, MESSAGE)
        inline = backend.writer.inline_commits
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
        try:
            enqueue = asyncio.ensure_future(backend.enqueue(CTX, MESSAGE))
            turns = 0
            for _ in range(20):  # the event loop keeps turning while the unit waits
                await asyncio.sleep(0.005)
                turns += 1
            assert not enqueue.done()
            assert turns == 20
        finally:
            other.execute("ROLLBACK")
            other.close()
        job_id = await enqueue

        assert backend.writer.inline_commits == inline
        assert (await backend.get_job(CTX, job_id)).job_id == job_id


async def test_full_durability_never_commits_on_the_event_loop(tmp_path: Path) -> None:
    async with SqliteBackend(
        tmp_path / "queue.db", clock=FakeClock(), synchronous="FULL"
    ) as backend:
        await backend.enqueue(CTX, MESSAGE)
        await backend.enqueue(CTX, MESSAGE)

        assert backend.writer.inline_commits == 0
        assert backend.writer.commits >= 2


async def test_a_lone_enqueue_that_fails_in_its_commit_raises_a_dogqueue_error(
    tmp_path: Path,
) -> None:
    """The lone path has no future to deliver through: the unit's error is raised as the
    batch path delivers it (StorageError, not the driver's), and nothing is left behind."""
    path = tmp_path / "queue.db"
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        await backend.enqueue(CTX, MESSAGE)
        other = sqlite3.connect(path)
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        other.commit()
        inline = backend.writer.inline_commits

        with pytest.raises(StorageError, match="no"):
            await backend.enqueue(CTX, MESSAGE)

        other.execute("DROP TRIGGER refuse")
        other.commit()
        other.close()
        job_id = await backend.enqueue(CTX, MESSAGE)
        assert backend.writer.inline_commits == inline + 1  # both ran alone; one committed
        events = await backend.read_events()
        assert [e.job_id for e in events][-1] == job_id and len(events) == 2
        assert await backend.projected_jobs() == rebuild(events)


async def test_a_lone_commit_starts_a_checkpoint_due_by_its_time(tmp_path: Path) -> None:
    """A commit counts its events at the transaction's time (no clock read of its own):
    once the clock passed CHECKPOINT_EVERY_SECONDS, the next lone commit starts one."""
    path, clock = tmp_path / "queue.db", FakeClock()
    async with SqliteBackend(path, clock=clock) as backend:
        checkpointer = backend.writer.projection_checkpointer
        assert checkpointer is not None
        for _ in range(3):
            await backend.enqueue(CTX, MESSAGE)
        await asyncio.to_thread(checkpointer.wait)
        assert read_checkpoint(path).position == 0  # too few events, too early

        clock.advance(timedelta(seconds=catchup.CHECKPOINT_EVERY_SECONDS))
        await backend.enqueue(CTX, MESSAGE)
        await asyncio.to_thread(checkpointer.wait)
        assert read_checkpoint(path).position == 4
