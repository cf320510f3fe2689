"""Three processes call enqueue_due for the same schedules over 500 simulated minutes,
their fake clocks in step: exactly one job per (schedule, tick), on SQLite, PostgreSQL
and Redis, and the same jobs one process alone makes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from dogqueue import FakeClock, enqueue_due
from dogqueue.backend import locate
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.redis.backend import default_url
from tests.integration.schedule_client import START, adapter_on, schedules

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3
#: The simulated minutes the processes are at, in turn: 500 of them, with a pause
#: (minutes 200 to 239 skipped) that the catch-up policies must handle.
MINUTES = [m for m in range(540) if not 200 <= m < 240]


def start_client(db: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.schedule_client", db],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def one_process_alone() -> Counter[tuple[str, str | None]]:
    """The jobs one process makes on a memory backend, calling at the same minutes."""
    clock = FakeClock(START)
    async with MemoryBackend(clock=clock) as backend:
        adapter = await adapter_on(backend)
        for minute in MINUTES:
            clock.set(START + timedelta(minutes=minute))
            await enqueue_due(adapter, schedules())
        jobs = await backend.projected_jobs()
    return Counter((job.tenant_id, job.message.idempotency_key) for job in jobs.values())


def run_in_step(db: str) -> list[int]:
    """Start the processes, move their clocks minute by minute (all three answer before
    the next minute), and return how many jobs each minute's calls made in all."""
    clients = [start_client(db) for _ in range(PROCESSES)]
    made = []
    try:
        for minute in MINUTES:
            for client in clients:
                assert client.stdin is not None
                client.stdin.write(f"{minute}\n")
                client.stdin.flush()
            total = 0
            for client in clients:
                assert client.stdout is not None
                line = client.stdout.readline().split()
                assert line[:2] == ["done", str(minute)], (line, client.stderr)
                total += int(line[2])
            made.append(total)
    finally:
        for client in clients:
            _, err = client.communicate("\n", timeout=120)
            assert client.returncode == 0, err
    return made


async def jobs_in(db: str) -> Counter[tuple[str, str | None]]:
    async with locate.open_backend(db) as backend:
        jobs = await backend.projected_jobs()
    return Counter((job.tenant_id, job.message.idempotency_key) for job in jobs.values())


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
async def test_three_processes_enqueue_each_tick_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        db = str(tmp_path / "queue.db")
    elif kind == "postgres":
        db = f"{default_dsn()}?schema={request.getfixturevalue('pg_schema')}"
    else:
        prefix = request.getfixturevalue("redis_prefix")
        db = f"{default_url()}?prefix={prefix}&durability=none"
    made = await asyncio.to_thread(run_in_step, db)
    found = await jobs_in(db)
    expected = await one_process_alone()
    assert set(found.values()) == {1}  # no (schedule, tick) has two jobs
    assert found == expected
    assert sum(made) == len(found)
    # Sanity of the oracle: every minute ticked; the pause was caught up per policy.
    minutely = [k for t, k in found if t == "acme" and "minutely@" in (k or "")]
    assert len(minutely) == len(MINUTES)
    assert sum(1 for t, k in found if t == "globex") == len(MINUTES) + 2
    assert sum(1 for _, k in found if "nightly@" in (k or "")) == 1
