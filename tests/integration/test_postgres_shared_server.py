"""A shared PostgreSQL server never stalls dogqueue: transactions that wrote nothing to
the queue (another database's, an app's) hold back neither the operational paths nor
numbering, and an app transaction holding a transactional enqueue open delays no one.

Each call is bounded by asyncio.wait_for as a hang guard, generously: the old sequencer
waited 10 s per call for any open transaction on the server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from dogqueue import Job, JobMessage, JobStatus, QueueAdapter, QueueCtx, Worker
from dogqueue.audit.compare import UNSEALED_GRACE
from dogqueue.audit.verify import verify_log
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.log import PostgresLog
from dogqueue.backend.postgres.queries import Q
from dogqueue.clock import utc_now

pytestmark = pytest.mark.postgres

#: Seconds any one call may take before the test calls it a hang (the reads' own wait
#: for numbering is made endless below, so a regression hangs rather than lags).
HANG = 8.0
#: The same for a command in a subprocess, which pays for starting Python too.
CLI_HANG = 30.0
FOREIGN_DB = "dogqueue_foreign_writer"
ROOT = Path(__file__).resolve().parents[2]
ACME = QueueCtx("acme")


def message(queue: str = "default") -> JobMessage:
    return JobMessage(job_type="work", payload_bytes=b"{}", queue=queue)


def _dsn_of(database: str) -> str:
    base, _, _ = default_dsn().rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(autouse=True)
def endless_seal_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dogqueue.backend.postgres.backend.SEAL_WAIT", 3600.0)


@pytest.fixture
async def foreign_writer() -> AsyncIterator[asyncpg.Connection]:
    """A write transaction holding an xid open in another database of the server."""
    admin = await asyncpg.connect(default_dsn())
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", FOREIGN_DB):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # made meanwhile
                await admin.execute(f'CREATE DATABASE "{FOREIGN_DB}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(_dsn_of(FOREIGN_DB))
    await conn.execute("BEGIN")
    await conn.fetchval("SELECT txid_current()")
    try:
        yield conn
    finally:
        await conn.execute("ROLLBACK")
        await conn.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dogqueue", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_a_foreign_databases_open_transaction_stalls_nothing(
    pg_schema: str, foreign_writer: asyncpg.Connection
) -> None:
    url = f"{default_dsn()}?schema={pg_schema}"
    backend = PostgresBackend(default_dsn(), schema=pg_schema)
    await backend.open()
    ids = await backend.enqueue_many(ACME, [message()] * 3)
    await asyncio.wait_for(backend.close(), HANG)

    # The acting command: opens, cancels, closes.
    canceled = await asyncio.wait_for(
        asyncio.to_thread(_cli, "cancel", "--db", url, "--tenant", "acme", ids[0]), CLI_HANG
    )
    assert canceled.returncode == 0, canceled.stderr

    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        assert (await backend.get_job(ACME, ids[0])).status is JobStatus.CANCELED
        events = await asyncio.wait_for(backend.read_events(), HANG)
        assert [e.seq for e in events] == [1, 2, 3, 4]  # every event numbered, dense
        history = await asyncio.wait_for(backend.history(ACME, ids[0]), HANG)
        assert [e.seq for e in history] == [1, 4]  # the tenant's positions, not 0

    printed = await asyncio.wait_for(
        asyncio.to_thread(_cli, "history", "--db", url, "--tenant", "acme", ids[0]), CLI_HANG
    )
    assert printed.returncode == 0, printed.stderr
    rows = [line.split()[0] for line in printed.stdout.splitlines()[1:] if line.strip()]
    assert rows == ["1", "4"], printed.stdout


async def test_a_catch_all_worker_finds_a_new_queue_while_a_foreign_transaction_is_open(
    pg_schema: str, foreign_writer: asyncpg.Connection
) -> None:
    ran = asyncio.Event()

    class Work(Job[None, None]):
        JOB_TYPE = "work"

        async def execute(self, ctx: None) -> None:
            ran.set()

    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(Work)
        worker = Worker(adapter, queues="*", handle_signals=False)
        running = asyncio.ensure_future(worker.run())
        try:
            await asyncio.sleep(0.2)  # the worker is idle, knowing no queue yet
            await backend.enqueue(
                ACME, JobMessage(job_type="work", payload_bytes=b"{}", queue="brand-new")
            )
            await asyncio.wait_for(ran.wait(), HANG)
        finally:
            await worker.stop()
            await asyncio.wait_for(running, 30)


async def test_an_app_transaction_holding_an_enqueue_delays_no_other_tenant(
    pg_schema: str,
) -> None:
    done = 0
    finished = asyncio.Event()

    class Work(Job[None, None]):
        JOB_TYPE = "work"

        async def execute(self, ctx: None) -> None:
            nonlocal done
            done += 1
            if done == 20:
                finished.set()

    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        app = await asyncpg.connect(default_dsn())
        await app.execute(f'CREATE TABLE "{pg_schema}".orders (id int)')
        transaction = app.transaction()
        await transaction.start()
        # The app wrote first, so its transaction has an xid older than what follows.
        await app.execute(f'INSERT INTO "{pg_schema}".orders VALUES (1)')
        held = await backend.enqueue_in_transaction(app, QueueCtx("app"), message())
        try:
            adapter: QueueAdapter[None] = QueueAdapter(backend)
            await adapter.register_job(Work)
            other = QueueCtx("other")
            ids = await backend.enqueue_many(other, [message()] * 20)
            worker = Worker(adapter, tenants=[other], concurrency=4, handle_signals=False)
            running = asyncio.ensure_future(worker.run())
            try:
                await asyncio.wait_for(finished.wait(), 30)
            finally:
                await worker.stop()
                await asyncio.wait_for(running, 30)
            # Positions readers do not wait for the held transaction either.
            history = await asyncio.wait_for(backend.history(other, ids[-1]), HANG)
            positions = [e.seq for e in history]
            assert positions[0] == 20 and 0 not in positions
            await asyncio.wait_for(backend.cancel_job(other, ids[0]), HANG)
        finally:
            await transaction.commit()
            await app.close()
        # Committed later, with an xid the sequencer's cursor passed long ago: numbered.
        events = await asyncio.wait_for(backend.read_events(), HANG)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert held in {e.job_id for e in events}
        assert (await verify_log(backend.log_reader())).ok


async def test_history_says_which_events_wait_for_a_position(pg_schema: str) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        job_id = await backend.enqueue(ACME, message())
    stuck = await asyncpg.connect(default_dsn(), server_settings={"search_path": pg_schema})
    try:
        await stuck.execute("BEGIN")
        await stuck.fetchrow(Q["lock_log_head"])  # a step frozen mid-way
        async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
            await backend.cancel_job(ACME, job_id)  # closing does not wait for the step
        log = PostgresLog(dsn=default_dsn(), schema=pg_schema)  # numbers nothing
        try:
            fresh = await verify_log(log)
            assert fresh.ok and fresh.waiting == 1
            stale = await verify_log(log, now=utc_now() + UNSEALED_GRACE + timedelta(seconds=1))
            [problem] = stale.problems
            assert "1 event(s) still wait for a position" in problem.what
            assert f"'canceled' of job {job_id!r} of 'acme'" in problem.what
        finally:
            await log.close()
        url = f"{default_dsn()}?schema={pg_schema}"
        printed = await asyncio.wait_for(
            asyncio.to_thread(_cli, "history", "--db", url, "--tenant", "acme", job_id), CLI_HANG
        )
    finally:
        await stuck.execute("ROLLBACK")
        await stuck.close()
    assert printed.returncode == 0, printed.stderr
    rows = [line.split()[0] for line in printed.stdout.splitlines()[1:2]]
    assert rows == ["1"]
    assert "\n-  " in printed.stdout  # the cancel, not numbered: no position 0
    assert "1 event(s) committed but not numbered yet" in printed.stdout
