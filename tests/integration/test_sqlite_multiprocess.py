"""Several OS processes sharing one SQLite file: no double lease, nothing lost."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

from dogqueue import JobMessage, JobStatus, QueueCtx, rebuild
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.core.events import Leased

WORKER = Path(__file__).with_name("dequeue_worker.py")
TENANTS = ["acme", "globex"]
MIXED = Path(__file__).with_name("mixed_worker.py")


async def spawn(script: Path, *args: str) -> asyncio.subprocess.Process:
    """A Python process running `script` from the repository's root, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )


async def test_processes_never_lease_one_job_twice(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    job_ids: set[str] = set()
    async with SqliteBackend(path) as backend:
        for tenant in TENANTS:
            messages = [JobMessage(job_type="t", payload_bytes=b"{}") for _ in range(300)]
            job_ids.update(await backend.enqueue_many(QueueCtx(tenant), messages))
    workers = [await spawn(WORKER, str(path), ",".join(TENANTS)) for _ in range(3)]
    for worker in workers:  # every process open before any leases
        assert worker.stdout is not None
        assert await asyncio.wait_for(worker.stdout.readline(), 120) == b"ready\n"
    raw = await asyncio.wait_for(asyncio.gather(*(w.communicate(b"go\n") for w in workers)), 120)
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


async def test_four_processes_mixing_every_call_agree_with_the_log(tmp_path: Path) -> None:
    """4 processes enqueue, lease, complete, fail and cancel on one file at once, each
    deciding from its own backend object: every job a process was told it enqueued is
    in the log, no lease was handed out twice, no job completed twice, every call's
    answer matches the log, and the projection equals the fold of the log."""
    path = tmp_path / "shared.db"
    async with SqliteBackend(path):
        pass  # the schema, before the processes race to create it
    workers = [await spawn(MIXED, str(path), str(seed)) for seed in range(4)]
    raw = await asyncio.wait_for(asyncio.gather(*(w.communicate() for w in workers)), 240)
    lines: list[list[str]] = []
    for worker, (out, err) in zip(workers, raw, strict=True):
        assert worker.returncode == 0, err.decode()
        lines.extend(line.split() for line in out.decode().splitlines())

    async with SqliteBackend(path) as backend:
        events = await backend.read_events()
        jobs = await backend.projected_jobs()
        assert jobs == rebuild(events)
        by_job = {job_id: job for (_, job_id), job in jobs.items()}

    told = Counter(line[0] for line in lines)
    enqueued = {line[1] for line in lines if line[0] == "E"}
    assert len(enqueued) == told["E"], "one id was handed out twice"
    assert enqueued == set(by_job), "a job was lost, or one appeared from nowhere"
    leases = [(line[1], int(line[2])) for line in lines if line[0] == "L"]
    logged_leases = [(e.job_id, e.token) for e in events if isinstance(e, Leased)]
    assert Counter(leases) == Counter(logged_leases)
    assert max(Counter(leases).values()) == 1, "one lease was handed out twice"
    completed = Counter(e.job_id for e in events if e.type == "completed")
    assert completed == Counter(line[1] for line in lines if line[0] == "A")
    assert max(completed.values(), default=1) == 1
    canceled = {e.job_id for e in events if e.type == "canceled"}
    assert {line[1] for line in lines if line[0] == "R"} <= canceled
    for line in lines:
        if line[0] == "C" and line[2] == JobStatus.CANCELED.value:
            assert by_job[line[1]].status is JobStatus.CANCELED
    assert sum(1 for w in raw if w[0].split()) == 4
