"""Several writers on one file: a writer folds the others' events before it takes the
write lock (in a read snapshot, while it waits), a checkpoint written from memory skips
the rows another writer's checkpoint already holds at the same version, and a closing
writer hands its changes over instead of folding the log's tail."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dogqueue import FakeClock, JobMessage, JobStatus, QueueCtx, rebuild
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.catchup import catch_up_page, write_changes
from dogqueue.backend.sqlite.connection import connect
from dogqueue.core.errors import StorageError
from tests.integration.checkpoint_files import read_checkpoint

ACME = QueueCtx("acme")
MESSAGE = JobMessage(job_type="t", payload_bytes=b"{}")


@asynccontextmanager
async def two_writers(path: Path) -> AsyncIterator[tuple[SqliteBackend, SqliteBackend]]:
    """Two backends on one file, both opened (their projections loaded) before either
    writes, on one fake clock."""
    clock = FakeClock()
    async with (
        SqliteBackend(path, clock=clock) as first,
        SqliteBackend(path, clock=clock) as second,
    ):
        yield first, second


async def test_a_writer_waiting_for_the_lock_folds_the_holders_events_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.db"
    async with two_writers(path) as (first, second):
        ids = await first.enqueue_many(ACME, [MESSAGE] * 5)
        held = second.writer.projection
        assert held.position == 0  # loaded before the enqueue; nothing read since
        holder = connect(str(path), "NORMAL")
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            dequeue = asyncio.ensure_future(second.dequeue(ACME, ["default"]))

            async def folded() -> None:
                while held.position < 5:
                    assert not dequeue.done()
                    await asyncio.sleep(0.005)

            await asyncio.wait_for(folded(), 60)  # folded while the lock is still held
            assert not dequeue.done()
            assert all(held.jobs[(ACME.tenant_id, i)].status is JobStatus.ENQUEUED for i in ids)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        lease = await asyncio.wait_for(dequeue, 60)
        assert lease is not None and lease.job_id == ids[0]
        assert await first.dequeue(ACME, ["default"]) is not None
        assert len(await first.dequeue_many(ACME, ["default"], 10)) == 3
    _, _, events = read_checkpoint(path)
    assert Counter(e.type for e in events) == {"enqueued": 5, "leased": 5}


@pytest.mark.parametrize("ahead", [False, True], ids=["under-the-lock", "ahead"])
async def test_a_catch_up_that_fails_half_way_starts_again_from_the_checkpoint(
    tmp_path: Path, ahead: bool
) -> None:
    path = tmp_path / "q.db"
    async with two_writers(path) as (first, second):
        if ahead:  # once it has seen another writer's events, it folds ahead
            await first.enqueue(ACME, MESSAGE)
            assert await second.dequeue(ACME, ["default"]) is not None
        assert second.writer.projection.others_write is ahead
        ids = await first.enqueue_many(ACME, [MESSAGE] * 2)
        other = connect(str(path), "NORMAL")
        try:
            (end,) = other.execute("SELECT max(seq) FROM events").fetchone()
            other.execute(
                "INSERT INTO events (seq, tenant_id, job_id, version, type, data, hash, tpos)"
                " VALUES (?, 'acme', 'x', 1, 'enqueued', x'c1', x'', ?)",
                (end + 1, end + 1),
            )
            with pytest.raises(StorageError, match="does not decode"):
                await second.dequeue(ACME, ["default"])  # folds two events, then fails
            assert not second.writer.projection.loaded
            other.execute("DELETE FROM events WHERE seq = ?", (end + 1,))
        finally:
            other.close()
        lease = await second.dequeue(ACME, ["default"])  # each folded once, not twice
        assert lease is not None and lease.job_id == ids[0]


async def test_a_memory_checkpoint_past_anothers_skips_the_rows_it_holds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.db"
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        backend.writer.projection_checkpointer = None  # checkpoints written by hand
        ids = await backend.enqueue_many(ACME, [MESSAGE] * 3)
        other = connect(str(path), "NORMAL")
        try:
            assert catch_up_page(other) == 3  # another process's checkpoint, at 3
            lease = await backend.dequeue(ACME, ["default"])
            assert lease is not None and lease.job_id == ids[0]
            changes = backend.writer.projection.take_changes()
            assert changes is not None and (changes.base, changes.position) == (0, 4)
            assert len(changes.jobs) == 3
            statements: list[str] = []
            other.set_trace_callback(statements.append)
            assert write_changes(other, changes)
            other.set_trace_callback(None)
            counts = {
                (t, s): n
                for t, s, n in other.execute("SELECT tenant_id, status, jobs FROM job_counts")
                if n
            }
        finally:
            other.close()
    written = [s for s in statements if s.startswith(("UPDATE jobs ", "INSERT INTO jobs "))]
    assert len(written) == 1  # the leased job's row; the two others were there already
    position, rows, events = read_checkpoint(path)
    assert position == 4 and rows == rebuild(events)
    assert counts == {("acme", "enqueued"): 2, ("acme", "leased"): 1}


async def test_a_closing_writer_checkpoints_from_memory(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        checkpointer = backend.writer.projection_checkpointer
        assert checkpointer is not None
        await backend.enqueue_many(ACME, [MESSAGE] * 4)
        await backend.dequeue_many(ACME, ["default"], 2)
    assert checkpointer.written_from_memory == 1
    assert checkpointer.pages == 0  # no event of the tail decoded at close
    position, rows, events = read_checkpoint(path)
    assert position == 6 and rows == rebuild(events)
