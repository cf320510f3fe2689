"""Worker processes on one Redis queue, SIGKILLed while work remains: no job lost, none
completed twice, re-executions bounded by kills x concurrency."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dogqueue import JobStatus, QueueCtx
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.redis.backend import default_cluster, default_url
from tests.runtime.crash_app import CRASH_CONFIG
from tests.runtime.test_worker_crash import _message, assert_nothing_lost

ROOT = Path(__file__).resolve().parents[2]
JOBS = 800
TENANTS = [f"tenant-{i}" for i in range(4)]
WORKERS = 3
CONCURRENCY = 8
KILLS = 6


def start_worker(prefix: str, log_dir: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), DOGQUEUE_CRASH_LOG_DIR=str(log_dir))
    env["DOGQUEUE_CRASH_JOB_SECONDS"] = "0.3"  # so that the kills find work remaining
    command = [sys.executable, "-m", "tests.integration.redis_worker", prefix, str(CONCURRENCY)]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE)


@pytest.mark.slow
async def test_killed_workers_on_redis_lose_nothing(redis_prefix: str, tmp_path: Path) -> None:
    log_dir = tmp_path / "executions"
    log_dir.mkdir()
    rng = random.Random()
    async with RedisBackend(
        default_url(),
        prefix=redis_prefix,
        config=CRASH_CONFIG,
        durability="none",
        cluster=default_cluster(),
    ) as backend:
        for index, tenant in enumerate(TENANTS):
            keys = [f"{tenant}:{n}" for n in range(index, JOBS, len(TENANTS))]
            await backend.enqueue_many(QueueCtx(tenant), [_message(key) for key in keys])
        workers = [start_worker(redis_prefix, log_dir) for _ in range(WORKERS)]
        kills = 0
        try:
            while kills < KILLS:
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                if await _all_terminal(backend, once=True):
                    break  # the work ran out before the kills did
                victim = workers.pop(rng.randrange(len(workers)))
                victim.send_signal(signal.SIGKILL)
                await asyncio.to_thread(victim.communicate)
                kills += 1
                workers.append(start_worker(redis_prefix, log_dir))
            await asyncio.wait_for(_all_terminal(backend), 300)
        finally:
            for process in workers:
                process.send_signal(signal.SIGTERM)
            outputs = [
                (await asyncio.to_thread(process.communicate, None, 60))[1].decode()
                for process in workers
            ]
        assert not any("Traceback" in output for output in outputs), outputs
        jobs = await backend.projected_jobs()
        events = await backend.read_events()

    assert_nothing_lost(jobs, events, log_dir, kills, JOBS, CONCURRENCY)


async def _all_terminal(backend: RedisBackend, *, once: bool = False) -> bool:
    terminal = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}
    while True:
        jobs = await backend.projected_jobs()
        if all(job.status in terminal for job in jobs.values()):
            return True
        if once:
            return False
        await asyncio.sleep(0.2)
