"""Reads of one SqliteBackend share one reader connection. Each read must run its
statement to the end in one step: were another read's statement still open on that
connection, this one would run inside its read transaction and see the database as it
was then, so a job enqueued a moment ago would not be found."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend

CTX = QueueCtx("acme")


async def test_a_committed_job_is_found_while_other_reads_are_under_way(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        message = JobMessage(job_type="t", payload_bytes=b"{}")
        await backend.enqueue_many(CTX, [message] * 50)  # reads that return many rows
        stop = asyncio.Event()

        async def keep_reading() -> None:
            while not stop.is_set():
                await backend.read_events(limit=50)

        readers = [asyncio.create_task(keep_reading()) for _ in range(3)]
        try:
            for _ in range(200):
                job_id = await backend.enqueue(CTX, message)
                assert (await backend.get_job(CTX, job_id)).job_id == job_id
        finally:
            stop.set()
            await asyncio.gather(*readers)
