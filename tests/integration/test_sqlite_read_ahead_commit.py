"""The SQLite writer runs calls made together in one transaction, in call order, and
keeps its read-ahead list of ready jobs exact across them (the conformance suite checks
the outcome on every backend; the single commit is SQLite's own)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dogqueue import FakeClock, JobMessage, JobPriority, JobStatus, QueueCtx, rebuild
from dogqueue.backend.sqlite import SqliteBackend

CTX = QueueCtx("tenant-a")


def message(priority: JobPriority = JobPriority.NORMAL) -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}", priority=priority)


async def test_calls_made_together_share_one_commit(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "queue.db", clock=FakeClock()) as backend:
        first = [await backend.enqueue(CTX, message()) for _ in range(10)]
        commits_before = backend.writer.commits

        lone, canceled, urgent_id, after = await asyncio.gather(
            backend.dequeue_many(CTX, ["default"], 1),
            backend.cancel_job(CTX, first[2]),  # inside the read-ahead list, not its head
            backend.enqueue(CTX, message(priority=JobPriority.HIGH)),
            backend.dequeue_many(CTX, ["default"], 4),
        )

        assert backend.writer.commits == commits_before + 1
        assert [lease.job_id for lease in lone] == first[:1]
        assert canceled is JobStatus.CANCELED
        assert [lease.job_id for lease in after] == [urgent_id, first[1], *first[3:5]]
        assert await backend.projected_jobs() == rebuild(await backend.read_events())
