"""Several OS processes sharing one SQLite file: no double lease, nothing lost."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

from dogqueue import JobMessage, JobStatus, QueueCtx, rebuild
from dogqueue.backend.sqlite import SqliteBackend

WORKER = Path(__file__).with_name("dequeue_worker.py")
TENANTS = ["acme", "globex"]


async def test_processes_never_lease_one_job_twice(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    job_ids: set[str] = set()
    async with SqliteBackend(path) as backend:
        for tenant in TENANTS:
            messages = [JobMessage(job_type="t", payload_bytes=b"{}") for _ in range(300)]
            job_ids.update(await backend.enqueue_many(QueueCtx(tenant), messages))
    root = Path(__file__).parents[2]
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            str(path),
            ",".join(TENANTS),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=root,
        )
        for _ in range(3)
    ]
    raw = await asyncio.wait_for(asyncio.gather(*(w.communicate() for w in workers)), 120)
    outputs = [(out.decode(), err.decode()) for out, err in raw]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "locked" not in err
    leased = Counter(line for out, _ in outputs for line in out.split())
    assert set(leased) == job_ids
    assert max(leased.values()) == 1, "a job was leased by two processes"
    assert sum(1 for out, _ in outputs if out.split()) >= 2, "only one process got work"

    async with SqliteBackend(path) as backend:
        live = await backend.projected_jobs()
        assert all(job.status is JobStatus.COMPLETED for job in live.values())
        events = await backend.read_events()
        assert Counter(e.type for e in events) == {
            "enqueued": 600,
            "leased": 600,
            "completed": 600,
        }
        assert live == rebuild(events)


async def test_two_backends_in_one_process_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with SqliteBackend(path) as first, SqliteBackend(path) as second:
        ctx = QueueCtx("acme")
        job_id = await first.enqueue(ctx, JobMessage(job_type="t", payload_bytes=b"{}"))
        lease = await second.dequeue(ctx, ["default"])
        assert lease is not None and lease.job_id == job_id
        assert await first.dequeue(ctx, ["default"]) is None
        await first.ack_complete(ctx, lease)
        assert await second.get_status(ctx, job_id) is JobStatus.COMPLETED
