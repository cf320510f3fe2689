"""Worker processes on one SQLite file, SIGKILLed at random while they work.

Bounded for CI by default; DOGQUEUE_CRASH_JOBS and DOGQUEUE_CRASH_SECONDS make it longer.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dogqueue import Completed, JobMessage, JobStatus, QueueCtx, rebuild
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.jobs import encode_json
from tests.runtime.crash_app import CRASH_CONFIG, CrashWork

JOBS = int(os.environ.get("DOGQUEUE_CRASH_JOBS", "2000"))
KILL_SECONDS = float(os.environ.get("DOGQUEUE_CRASH_SECONDS", "8"))
TENANTS = [f"tenant-{i}" for i in range(4)]
WORKERS = 3
CONCURRENCY = 8
#: How long the survivors may take to finish everything after the last kill.
DRAIN_SECONDS = 90.0
ROOT = Path(__file__).resolve().parents[2]


def start_worker(db: Path, log_dir: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["DOGQUEUE_CRASH_LOG_DIR"] = str(log_dir)
    command = [sys.executable, "-m", "dogqueue", "worker", "tests.runtime.crash_app:make_adapter"]
    options = ["--db", str(db), "--concurrency", str(CONCURRENCY), "--log-level", "WARNING"]
    return subprocess.Popen(command + options, env=env, stderr=subprocess.PIPE)


@pytest.mark.slow
async def test_killed_workers_lose_no_job_and_complete_none_twice(tmp_path: Path) -> None:
    db, log_dir = tmp_path / "queue.db", tmp_path / "executions"
    log_dir.mkdir()
    rng = random.Random()
    async with SqliteBackend(db, config=CRASH_CONFIG) as backend:
        for index, tenant in enumerate(TENANTS):
            keys = [f"{tenant}:{n}" for n in range(index, JOBS, len(TENANTS))]
            await backend.enqueue_many(QueueCtx(tenant), [_message(key) for key in keys])
        workers = [start_worker(db, log_dir) for _ in range(WORKERS)]
        kills = 0
        try:
            loop = asyncio.get_running_loop()
            kill_until = loop.time() + KILL_SECONDS
            while loop.time() < kill_until:
                await asyncio.sleep(rng.uniform(0.3, 1.2))
                victim = workers.pop(rng.randrange(len(workers)))
                victim.send_signal(signal.SIGKILL)
                victim.communicate()
                kills += 1
                workers.append(start_worker(db, log_dir))
            await asyncio.wait_for(_all_terminal(backend), DRAIN_SECONDS)
            await asyncio.wait_for(_ready(workers, log_dir), DRAIN_SECONDS)
        finally:
            for process in workers:
                process.send_signal(signal.SIGTERM)
            outputs = [process.communicate(timeout=60)[1].decode() for process in workers]
            codes = [process.returncode for process in workers]
        assert codes == [0] * len(workers), outputs
        assert not any("Traceback" in output for output in outputs), outputs

        jobs = await backend.projected_jobs()
        events = await backend.read_events()
    assert_nothing_lost(jobs, events, log_dir, kills, JOBS, CONCURRENCY)


def assert_nothing_lost(
    jobs: dict[JobKey, JobInfo],
    events: list[AnyEvent],
    log_dir: Path,
    kills: int,
    count: int,
    concurrency: int,
) -> None:
    """Every job completed exactly once, executions beyond one per job are bounded by
    kills x concurrency, and the projection is the fold of the log."""
    assert len(jobs) == count
    assert {job.status for job in jobs.values()} == {JobStatus.COMPLETED}
    completed = Counter(e.job_id for e in events if isinstance(e, Completed))
    assert set(completed) == {job_id for _, job_id in jobs}
    assert set(completed.values()) == {1}

    executions: Counter[str] = Counter()
    for file in log_dir.iterdir():
        executions.update(file.read_text().split())
    assert len(executions) == count
    extra = sum(n - 1 for n in executions.values())
    assert kills > 0
    print(f"crash test: {count} jobs, {kills} kills, {extra} extra executions")
    assert extra <= kills * concurrency, f"{extra} extra executions after {kills} kills"
    assert rebuild(events) == jobs


async def _ready(workers: list[subprocess.Popen[bytes]], log_dir: Path) -> None:
    """Wait until every worker process has built its app (it then handles SIGTERM)."""
    while not all((log_dir / f"{process.pid}.log").exists() for process in workers):  # noqa: ASYNC110 (polling another process's writes)
        await asyncio.sleep(0.05)


async def _all_terminal(backend: SqliteBackend) -> None:
    terminal = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}
    while True:
        jobs = await backend.projected_jobs()
        if all(job.status in terminal for job in jobs.values()):
            return
        await asyncio.sleep(0.2)


def _message(key: str) -> JobMessage:
    return JobMessage(
        job_type=CrashWork.JOB_TYPE,
        payload_bytes=encode_json(CrashWork(key=key)),
        max_retries=CrashWork.MAX_RETRIES,
    )
