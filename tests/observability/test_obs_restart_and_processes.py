"""Metrics are right after a restart and the same in another process (SQLite log)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from dogqueue import FakeClock, QueueAdapter, utc_now
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.observability import metrics_from_events
from tests.observability.obs_workload import run_workload


async def test_equal_after_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "queue.db"
    async with SqliteBackend(path, clock=clock) as backend:
        await run_workload(backend, clock)
        before = await QueueAdapter(backend).observability.metrics()
    async with SqliteBackend(path, clock=clock) as reopened:
        after = await QueueAdapter(reopened).observability.metrics()
    assert after.to_dict() == before.to_dict()
    assert after.get_job_count("email") == 6


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dogqueue", "metrics", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def test_another_process_sees_the_same_numbers(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    clock = FakeClock(utc_now())
    async with SqliteBackend(path, clock=clock) as backend:
        await run_workload(backend, clock)
        events = await backend.read_events()

    printed = json.loads(await asyncio.to_thread(_cli, "--db", str(path), "--format", "json"))
    # The other process folded the same log at its own "now"; fold ours at that moment.
    at = datetime.fromisoformat(printed["at"])
    assert printed == metrics_from_events(events, at).to_dict()
    assert sum(row["enqueued"] for row in printed["series"]) == 10

    acme = json.loads(
        await asyncio.to_thread(_cli, "--db", str(path), "--tenant", "acme", "--format", "json")
    )
    assert {row["tenant_id"] for row in acme["series"]} == {"acme"}


def test_text_and_prometheus_output(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    clock = FakeClock(utc_now())

    async def fill() -> None:
        async with SqliteBackend(path, clock=clock) as backend:
            await run_workload(backend, clock)

    asyncio.run(fill())
    text = _cli("--db", str(path))
    assert "acme    reports  report" in text
    exposition = _cli("--db", str(path), "--format", "prometheus", "--no-tenant-labels")
    assert 'dogqueue_jobs_enqueued_total{job_type="email",queue="default"} 6.0' in exposition
    missing = subprocess.run(
        [sys.executable, "-m", "dogqueue", "metrics", "--db", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "no database" in missing.stderr
