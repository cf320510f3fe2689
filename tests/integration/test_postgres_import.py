"""`dogqueue import --from SOURCE --to TARGET`: the demo's SQLite log moved into
PostgreSQL through the real command, numbered and verified before it returns."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.cli.demo_pipeline import run_demo
from tests.conftest import drop_schema

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _dogqueue(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dogqueue", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_the_demo_log_moves_to_a_new_schema_numbered_and_verified(
    tmp_path: Path, pg_schema: str
) -> None:
    await run_demo(tmp_path, write=lambda line: None)
    source = tmp_path / "inbox.db"
    async with SqliteBackend(source) as sqlite:
        events = await sqlite.read_events()
        jobs = await sqlite.projected_jobs()

    target = f"{default_dsn()}?schema={pg_schema}"
    done = await asyncio.to_thread(_dogqueue, "import", "--from", str(source), "--to", target)
    assert done.returncode == 0, done.stderr
    assert f"imported {len(events)} events" in done.stdout
    assert "verified: OK" in done.stdout

    # Numbered before the command returned: a read-only reader, which numbers nothing,
    # sees every event at its position.
    verified = await asyncio.to_thread(_dogqueue, "verify", "--db", target)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    async with PostgresBackend(default_dsn(), schema=pg_schema) as pg:
        log = pg.log_reader()
        assert await log.unsealed() == []
        moved = await log.events()
        assert [e.seq for e in moved] == list(range(1, len(events) + 1))
        assert [(e.tenant_id, e.job_id, e.version) for e in moved] == [
            (e.tenant_id, e.job_id, e.version) for e in events
        ]
        projected = await pg.projected_jobs()
    assert {k: (j.status, j.attempts) for k, j in projected.items()} == {
        k: (j.status, j.attempts) for k, j in jobs.items()
    }

    # A non-empty target is refused, and nothing is appended.
    again = await asyncio.to_thread(_dogqueue, "import", "--from", str(source), "--to", target)
    assert again.returncode == 2 and "not empty" in again.stderr


async def test_without_a_schema_the_import_makes_a_new_one(tmp_path: Path) -> None:
    await run_demo(tmp_path, write=lambda line: None)
    done = await asyncio.to_thread(
        _dogqueue, "import", "--from", str(tmp_path / "inbox.db"), "--to", default_dsn()
    )
    found = re.search(r"into schema '(dogqueue_import_\w+)'", done.stdout)
    assert found is not None, done.stdout + done.stderr
    try:
        assert done.returncode == 0, done.stderr
        assert found.group(1) != "dogqueue"
    finally:
        await asyncio.to_thread(drop_schema, found.group(1))
