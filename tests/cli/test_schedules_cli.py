"""`dogqueue worker` runs the SCHEDULES of its target's module (or --schedules), and
`dogqueue schedules` lists each schedule's last tick from the log and its next tick."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dogqueue import FakeClock, JobStatus, QueueCtx, enqueue_due
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.cli import main
from tests.runtime.helpers import until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
from scheduled_worker import SCHEDULES, make_adapter  # noqa: E402

ACME = QueueCtx("acme")
WORKER = [sys.executable, "-m", "dogqueue", "worker", "scheduled_worker:make_adapter"]
NOON = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)  # a Monday, 07:00 in New York


def env() -> dict[str, str]:
    variables = dict(os.environ)
    variables["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(EXAMPLES), variables.get("PYTHONPATH")])
    )
    return variables


async def test_the_worker_command_runs_the_schedules_of_its_module(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    process = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child)
        [*WORKER, "--db", str(db)],
        env=env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        async with SqliteBackend(db) as backend:
            # The real clock: an every-minute schedule's latest tick is always less than
            # a minute old, so the worker enqueues it at start.
            async def heartbeat_ran() -> bool:
                latest = await backend.latest_tick(ACME, "heartbeat")
                if latest is None:
                    return False
                return await backend.get_status(ACME, latest[1]) is JobStatus.COMPLETED

            await until(heartbeat_ran)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "schedules=3" in stderr


def test_a_bad_schedules_option_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [*WORKER, "--db", str(tmp_path / "q.db"), "--schedules", "scheduled_worker:Heartbeat"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "schedules" in done.stderr


async def fill(db: Path) -> None:
    """The schedules' ticks from noon to 13:10 UTC, one enqueue_due call a minute."""
    clock = FakeClock(NOON)
    async with SqliteBackend(db, clock=clock) as backend:
        adapter = await make_adapter(backend)
        for _ in range(71):
            await enqueue_due(adapter, SCHEDULES)
            clock.advance(timedelta(minutes=1))


def test_schedules_lists_last_and_next_ticks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "queue.db"
    asyncio.run(fill(db))
    monkeypatch.chdir(EXAMPLES)
    now = "2030-01-07T13:10:30Z"
    assert main(["schedules", "--db", str(db), "scheduled_worker", "--json", "--now", now]) == 0
    rows = {
        row["schedule"]: row for row in map(json.loads, capsys.readouterr().out.split("\n")[:-1])
    }
    assert rows["heartbeat"]["ticks"] == 71
    assert rows["heartbeat"]["last_tick"] == "2030-01-07T13:10:00Z"
    assert rows["heartbeat"]["next_tick"] == "2030-01-07T13:11:00Z"
    assert rows["morning-digest"]["last_tick"] == "2030-01-07T12:00:00Z"
    assert rows["morning-digest"]["next_tick"] == "2030-01-08T12:00:00Z"  # Tuesday 07:00 EST
    assert rows["morning-digest"]["timezone"] == "America/New_York"
    assert rows["quarter-hour"]["ticks"] == 5
    assert rows["quarter-hour"]["last_status"] == "enqueued"
    # Without the definitions: what the log knows, no next tick.
    assert main(["schedules", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "heartbeat" in out and "2030-01-07 13:10:00+00:00" in out
    assert main(["schedules", "--db", str(db), "nowhere_module"]) == 2
    assert "nowhere_module" in capsys.readouterr().err
