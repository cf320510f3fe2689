"""`dogqueue verify` compares every stored projection column a read path uses (status,
run_at, queue, priority, tenant_id, job type, lease expiry, idempotency key, version,
enqueue position) with the fold of the log: one edited column in a real SQLite file or
PostgreSQL schema fails verify, naming the column."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from dogqueue import FakeClock, JobPriority, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.cli import main
from tests.audit.audit_workload import message

CTX = QueueCtx("acme")

#: (column, SQL that changes it in the leased job's row). Every edit keeps the row
#: well-formed, so only the comparison with the fold can catch it.
EDITS = [
    ("status", "status = 'enqueued'"),
    ("run_at", "run_at = run_at - 1000000"),
    ("queue", "queue = 'other'"),
    ("priority", f"priority = {int(JobPriority.HIGH)}"),
    ("tenant_id", "tenant_id = 'globex'"),
    ("job_type", "job_type = 'other'"),
    ("lease_expires_at", "lease_expires_at = lease_expires_at + 3600000000"),
    ("idempotency_key", "idempotency_key = 'forged'"),
    ("version", "version = version + 1"),
    ("enqueue_seq", "enqueue_seq = enqueue_seq + 1000"),
]


async def _story(backend: EngineBackend, clock: FakeClock) -> str:
    """A leased job with a key, among others."""
    await backend.enqueue(CTX, message())
    leased = await backend.enqueue(CTX, message(idempotency_key="order-7"))
    await backend.cancel_job(CTX, (await backend.enqueue(CTX, message())))
    clock.advance(timedelta(seconds=1))
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None and lease.job_id == leased
    return leased


def _verify(db: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["verify", "--db", db])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(("column", "change"), EDITS, ids=[c for c, _ in EDITS])
def test_an_edited_sqlite_column_fails_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], column: str, change: str
) -> None:
    path = tmp_path / "queue.db"

    async def write() -> str:
        clock = FakeClock()
        async with SqliteBackend(path, clock=clock) as backend:
            return await _story(backend, clock)

    job_id = asyncio.run(write())
    assert _verify(str(path), capsys)[0] == 0
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"UPDATE jobs SET {change} WHERE job_id = ?", (job_id,))
    conn.close()
    code, text = _verify(str(path), capsys)
    assert code == 1, text
    assert f"column {column} " in text
    assert "Traceback" not in text


@pytest.mark.parametrize(("column", "change"), EDITS, ids=[c for c, _ in EDITS])
def test_an_edited_postgresql_column_fails_verify(
    pg_schema: str, capsys: pytest.CaptureFixture[str], column: str, change: str
) -> None:
    async def write() -> str:
        clock = FakeClock()
        async with PostgresBackend(default_dsn(), schema=pg_schema, clock=clock) as backend:
            return await _story(backend, clock)

    async def edit(job_id: str) -> None:
        conn = await asyncpg.connect(default_dsn(), server_settings={"search_path": pg_schema})
        try:
            await conn.execute(f"UPDATE jobs SET {change} WHERE job_id = $1", job_id)
        finally:
            await conn.close()

    job_id = asyncio.run(write())
    url = f"{default_dsn()}?schema={pg_schema}"
    assert _verify(url, capsys)[0] == 0
    asyncio.run(edit(job_id))
    code, text = _verify(url, capsys)
    assert code == 1, text
    assert f"column {column} " in text
