"""A SQLite batch whose task is cancelled while the writer thread commits it (the event
loop shutting down) commits once: its units are not run again one by one (each enqueue
would then be appended twice)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from pathlib import Path

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.transaction import SqliteTransaction

CTX = QueueCtx("tenant-a")
MESSAGE = JobMessage(job_type="t", payload_bytes=b"{}")


async def test_a_batch_cancelled_while_the_thread_commits_it_commits_once(
    tmp_path: Path,
) -> None:
    backend = SqliteBackend(tmp_path / "queue.db", clock=FakeClock())
    await backend.open()
    inside, release = threading.Event(), threading.Event()

    def hold(tx: SqliteTransaction, now: datetime) -> None:
        inside.set()
        release.wait()

    try:
        # One batch, on the thread: a unit that holds it mid-transaction, two enqueues.
        held = backend.writer.submit(hold)
        enqueues = [asyncio.ensure_future(backend.enqueue(CTX, MESSAGE)) for _ in range(2)]
        await asyncio.to_thread(inside.wait)
        for task in asyncio.all_tasks():  # the loop shutting down
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.sleep(0)
        release.set()  # the transaction goes on, and commits
        await asyncio.gather(held, *enqueues, return_exceptions=True)
    finally:
        release.set()
        await backend.close()

    async with SqliteBackend(tmp_path / "queue.db", clock=FakeClock()) as reopened:
        events = await reopened.read_events()
    assert [event.type for event in events] == ["enqueued", "enqueued"]
