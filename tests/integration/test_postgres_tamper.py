"""The verifier on a PostgreSQL log edited behind dogqueue's back: a flipped byte, a
deleted event, swapped events and a truncated tail (with a checkpoint) are caught; an
honest log written by concurrent tenants, over several of verify's pages, raises no
alarm. Also through `dogqueue verify --db URL`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from dogqueue import FakeClock, QueueCtx
from dogqueue.audit.checkpoint import Checkpoint, take_checkpoint
from dogqueue.audit.verify import PAGE, Report, verify_log
from dogqueue.backend.postgres import PostgresBackend, PostgresLog
from dogqueue.backend.postgres.backend import default_dsn
from tests.integration.pg_client import message

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def story(pg_schema: str) -> AsyncIterator[str]:
    """A closed queue with 3 tenants' histories (enqueue, lease, complete/fail/cancel)."""
    clock = FakeClock()
    async with PostgresBackend(default_dsn(), schema=pg_schema, clock=clock) as backend:
        for tenant in ("acme", "globex", "initech"):
            ctx = QueueCtx(tenant)
            ids = await backend.enqueue_many(ctx, [message(f"t{n}") for n in range(6)])
            for lease in await backend.dequeue_many(ctx, ["default"], 4):
                await backend.ack_complete(ctx, lease, b"ok")
            await backend.cancel_job(ctx, ids[-1])
    yield pg_schema


async def verify(schema: str, checkpoint: Checkpoint | None = None) -> Report:
    log = PostgresLog(dsn=default_dsn(), schema=schema)
    try:
        return await verify_log(log, checkpoint=checkpoint)
    finally:
        await log.close()


async def edit(schema: str, *statements: str) -> None:
    """Change the database as an attacker with write access would."""
    conn = await asyncpg.connect(default_dsn(), server_settings={"search_path": schema})
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_an_honest_log_verifies(story: str) -> None:
    report = await verify(story)
    assert report.ok, report.problems
    assert report.events == 3 * (6 + 4 + 4 + 1)


async def test_a_flipped_byte_is_caught(story: str) -> None:
    await edit(
        story,
        "UPDATE events SET data = overlay(data placing '\\x01'::bytea from 10 for 1)"
        " WHERE seq = (SELECT seq FROM log WHERE pos = 7)",
    )
    report = await verify(story)
    assert not report.ok and report.first_bad_seq == 7


async def test_a_deleted_event_is_caught(story: str) -> None:
    await edit(
        story,
        "DELETE FROM events WHERE seq = (SELECT seq FROM log WHERE pos = 12)",
        "DELETE FROM log WHERE pos = 12",
    )
    report = await verify(story)
    assert not report.ok and report.first_bad_seq is not None and report.first_bad_seq <= 13


async def test_swapped_events_are_caught(story: str) -> None:
    await edit(
        story,
        "UPDATE log SET pos = -1 WHERE pos = 20",
        "UPDATE log SET pos = 20 WHERE pos = 21",
        "UPDATE log SET pos = 21 WHERE pos = -1",
    )
    report = await verify(story)
    assert not report.ok and report.first_bad_seq == 20


async def test_a_truncated_tail_is_caught_with_a_checkpoint(story: str) -> None:
    log = PostgresLog(dsn=default_dsn(), schema=story)
    try:
        checkpoint = await take_checkpoint(log)
    finally:
        await log.close()
    last = 3 * 15
    await edit(
        story,
        f"DELETE FROM events WHERE seq IN (SELECT seq FROM log WHERE pos > {last - 3})",
        f"DELETE FROM log WHERE pos > {last - 3}",
        f"UPDATE log_head SET last_pos = {last - 3}",
    )
    report = await verify(story, checkpoint)
    assert not report.ok


async def test_the_command_line_verifies_a_postgresql_log(story: str, tmp_path: Path) -> None:
    url = f"{default_dsn()}?schema={story}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dogqueue", "verify", "--db", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    await edit(story, "UPDATE events SET data = data || '\\x00'::bytea WHERE seq = 3")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dogqueue", "verify"],
        capture_output=True,
        text=True,
        env=dict(env, DOGQUEUE_DB=url),
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr


@pytest.mark.slow
async def test_clean_events_written_concurrently_over_many_pages_raise_no_alarm(
    pg_schema: str,
) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        tenants = [QueueCtx(f"tenant-{n}") for n in range(4)]

        async def work(ctx: QueueCtx) -> None:
            for _ in range(8):
                await backend.enqueue_many(ctx, [message() for _ in range(500)])
                while leases := await backend.dequeue_many(ctx, ["default"], 250):
                    await asyncio.gather(*(backend.ack_complete(ctx, le) for le in leases))

        await asyncio.gather(*(work(ctx) for ctx in tenants))
    report = await verify(pg_schema)
    assert report.ok, report.problems[:5]
    assert report.events == 4 * 8 * 500 * 3 > 4 * PAGE
