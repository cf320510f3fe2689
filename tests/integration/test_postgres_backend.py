"""PostgreSQL-only behaviour: migrations under concurrency, transactional enqueue, cancels
that cross hosts, errors, and moving a SQLite log over."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import pytest

from dogqueue import (
    FakeClock,
    Job,
    JobCanceled,
    JobMessage,
    JobStatus,
    QueueAdapter,
    QueueCtx,
    StorageError,
    Worker,
    rebuild,
)
from dogqueue.backend.postgres import PostgresBackend, open_log
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.importing import import_events
from dogqueue.backend.postgres.queries import SCHEMA_VERSION
from dogqueue.backend.sqlite import SqliteBackend
from tests.integration.pg_client import message
from tests.integration.test_postgres_processes import assert_chains_verify

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
ACME = QueueCtx("acme")


@pytest.fixture
async def pg(pg_schema: str) -> AsyncIterator[PostgresBackend]:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        yield backend


def test_constructor_does_no_io_and_checks_its_arguments() -> None:
    backend = PostgresBackend("postgresql://nobody@127.0.0.1:1/none")  # no server there
    assert backend.schema == "dogqueue"
    with pytest.raises(Exception, match="schema"):
        PostgresBackend(default_dsn(), schema="")
    with pytest.raises(Exception, match="dsn"):
        PostgresBackend("")


async def test_an_unreachable_server_is_a_storage_error() -> None:
    backend = PostgresBackend("postgresql://postgres@127.0.0.1:1/postgres")
    with pytest.raises(StorageError, match="cannot open"):
        await backend.open()


def test_four_processes_open_a_new_schema_at_once(pg_schema: str) -> None:
    code = (
        "import asyncio, sys\n"
        "from dogqueue.backend.postgres import PostgresBackend\n"
        "from dogqueue.backend.postgres.backend import default_dsn\n"
        "async def main():\n"
        "    async with PostgresBackend(default_dsn(), schema=sys.argv[1]):\n"
        "        pass\n"
        "asyncio.run(main())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    processes = [
        subprocess.Popen([sys.executable, "-c", code, pg_schema], env=env, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, errors

    async def version() -> int:
        conn = await asyncpg.connect(default_dsn())
        try:
            found: int = await conn.fetchval(f'SELECT version FROM "{pg_schema}".schema_version')
            return found
        finally:
            await conn.close()

    assert asyncio.run(version()) == SCHEMA_VERSION


async def test_a_newer_schema_is_refused(pg: PostgresBackend, pg_schema: str) -> None:
    async with pg.pool.acquire() as conn:
        await conn.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(StorageError, match="newer"):
        await PostgresBackend(default_dsn(), schema=pg_schema).open()
    with pytest.raises(StorageError, match="newer"):
        await open_log(default_dsn(), pg_schema)


async def test_reading_a_log_never_creates_or_migrates_it(pg_schema: str) -> None:
    with pytest.raises(StorageError, match="no dogqueue queue"):
        await open_log(default_dsn(), pg_schema)
    conn = await asyncpg.connect(default_dsn())
    try:
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", pg_schema
        )
    finally:
        await conn.close()
    assert not exists


@pytest.mark.parametrize("commit", [True, False])
async def test_transactional_enqueue_exists_only_if_the_transaction_commits(
    pg: PostgresBackend, commit: bool
) -> None:
    conn = await asyncpg.connect(default_dsn())
    try:
        await conn.execute("CREATE TEMP TABLE orders (id int)")
        async with conn.transaction():
            await conn.execute("INSERT INTO orders VALUES (1)")
            job_id = await pg.enqueue_in_transaction(conn, ACME, message("ship-order"))
            # Visible inside the application's transaction, not outside it yet.
            assert await pg.projected_jobs() == {}
            if not commit:
                await conn.execute("SELECT 1/0")  # roll the application's transaction back
    except asyncpg.DivisionByZeroError:
        assert not commit
    finally:
        await conn.close()
    jobs = await pg.projected_jobs()
    if commit:
        assert list(jobs) == [("acme", job_id)]
        assert [e.type for e in await pg.history(ACME, job_id)] == ["enqueued"]
        lease = await pg.dequeue(ACME, ["default"])
        assert lease is not None and lease.job_id == job_id
    else:
        assert jobs == {}
        assert await pg.read_events() == []


async def test_transactional_enqueue_may_wait_for_a_parent(pg: PostgresBackend) -> None:
    parent = await pg.enqueue(ACME, message("parent"))
    conn = await asyncpg.connect(default_dsn())
    try:
        async with conn.transaction():
            child = await pg.enqueue_in_transaction(
                conn, ACME, msgspec.structs.replace(message("child"), after=(parent,))
            )
    finally:
        await conn.close()
    assert await pg.get_status(ACME, child) is JobStatus.WAITING
    lease = await pg.dequeue(ACME, ["default"])
    assert lease is not None and lease.job_id == parent
    await pg.ack_complete(ACME, lease)
    assert await pg.get_status(ACME, child) is JobStatus.ENQUEUED


async def test_transactional_enqueue_needs_an_open_transaction(pg: PostgresBackend) -> None:
    conn = await asyncpg.connect(default_dsn())
    try:
        with pytest.raises(Exception, match="connection"):
            await pg.enqueue_in_transaction(conn, ACME, message())
    finally:
        await conn.close()


async def test_a_cancel_on_another_host_reaches_cancel_listeners(
    pg: PostgresBackend, pg_schema: str
) -> None:
    job_id = await pg.enqueue(ACME, message())
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    pg.add_cancel_listener(lambda tenant, job: heard.put_nowait((tenant, job)))
    async with PostgresBackend(default_dsn(), schema=pg_schema) as other_host:
        assert await other_host.cancel_job(ACME, job_id) is JobStatus.CANCELED
    assert await asyncio.wait_for(heard.get(), 5) == ("acme", job_id)


async def test_a_worker_stops_a_job_canceled_on_another_host(
    pg: PostgresBackend, pg_schema: str
) -> None:
    started = asyncio.Event()
    stopped = asyncio.Event()

    class Slow(Job[None, None]):
        JOB_TYPE = "slow"

        async def execute(self, ctx: None) -> None:
            started.set()
            try:
                await asyncio.sleep(120)
            finally:
                stopped.set()

    adapter: QueueAdapter[None] = QueueAdapter(pg)
    await adapter.register_job(Slow)
    job_id = await adapter.enqueue(ACME, Slow())
    worker = Worker(adapter, tenants=[ACME], concurrency=1)
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 30)
        loop = asyncio.get_running_loop()
        async with PostgresBackend(default_dsn(), schema=pg_schema) as other_host:
            canceled_at = loop.time()
            await other_host.cancel_job(ACME, job_id)
        await asyncio.wait_for(stopped.wait(), 10)  # the lease is 5 minutes
        print(f"cross-host cancel stopped the job after {loop.time() - canceled_at:.3f} s")
    finally:
        await worker.stop()
        await asyncio.wait_for(running, 30)
    assert await pg.get_status(ACME, job_id) is JobStatus.CANCELED


async def test_a_sqlite_log_moves_to_postgresql(tmp_path: Path, pg: PostgresBackend) -> None:
    clock = FakeClock()
    async with SqliteBackend(tmp_path / "queue.db", clock=clock) as source:
        for tenant in ("acme", "globex"):
            ctx = QueueCtx(tenant)
            ids = await source.enqueue_many(ctx, [message(f"t{n}") for n in range(20)])
            for lease in await source.dequeue_many(ctx, ["default"], 12):
                await source.ack_complete(ctx, lease, b"ok")
            await source.cancel_job(ctx, ids[-1])
            keyed = JobMessage(job_type="k", payload_bytes=b"{}", idempotency_key="once")
            await source.enqueue(ctx, keyed)
        events = await source.read_events()
        jobs = await source.projected_jobs()

    assert await import_events(pg, events) == len(events)
    assert await pg.projected_jobs() == jobs  # job for job
    assert rebuild(await pg.read_events()) == jobs
    assert await assert_chains_verify(pg.log_reader()) == len(events)
    with pytest.raises(Exception, match="already belongs"):
        await pg.enqueue(
            ACME, JobMessage(job_type="k", payload_bytes=b"{}", idempotency_key="once")
        )
    with pytest.raises(StorageError, match="not empty"):
        await import_events(pg, events)


async def test_every_enqueue_wakes_a_waiter_on_another_host(
    pg: PostgresBackend, pg_schema: str
) -> None:
    # Polling every 60 s cannot explain a wake-up here: only NOTIFY can.
    async with PostgresBackend(default_dsn(), schema=pg_schema, poll_interval=60) as other:
        await other.wait_for_change(0)  # opened, listening
        for _ in range(3):
            woken = asyncio.ensure_future(other.wait_for_change(60))
            await asyncio.sleep(0.05)
            await pg.enqueue(ACME, message())
            await asyncio.wait_for(woken, 10)
            # A second enqueue right after the first falls in the same NOTIFY window:
            # the window's trailing NOTIFY must still announce it.
            woken = asyncio.ensure_future(other.wait_for_change(60))
            await asyncio.sleep(0.005)
            await pg.enqueue(ACME, message())
            await asyncio.wait_for(woken, 10)


async def test_a_new_jobs_notify_leaves_with_the_flush_that_commits_it(
    pg: PostgresBackend, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first NOTIFY of a pace interval is part of the enqueue's own statement (sent
    at its commit), not a statement of its own after it."""
    sent: list[str] = []

    async def separate_notify(channel: str, payload: str) -> None:
        sent.append(channel)

    monkeypatch.setattr(pg, "_notify", separate_notify)
    # Polling every 60 s cannot explain a wake-up here: only NOTIFY can.
    async with PostgresBackend(default_dsn(), schema=pg_schema, poll_interval=60) as other:
        await other.wait_for_change(0)  # opened, listening
        woken = asyncio.ensure_future(other.wait_for_change(60))
        await pg.enqueue(ACME, message())  # the first of this backend: not held back
        await asyncio.wait_for(woken, 10)
    assert sent == []


async def test_a_child_enqueued_while_its_parent_completes_elsewhere_is_never_stranded(
    pg: PostgresBackend, pg_schema: str
) -> None:
    """Two hosts race: one completes a parent while the other enqueues a child after
    it. Whichever commits second re-runs on fresh state (the parent's `dependents`
    count guards the completion), so the child ends ENQUEUED either way."""
    async with PostgresBackend(default_dsn(), schema=pg_schema) as other:
        for _ in range(30):
            parent = await pg.enqueue(ACME, message("parent"))
            lease = await pg.dequeue(ACME, ["default"])
            assert lease is not None and lease.job_id == parent
            _, child = await asyncio.gather(
                pg.ack_complete(ACME, lease),
                other.enqueue(ACME, msgspec.structs.replace(message("child"), after=(parent,))),
            )
            assert await pg.get_status(ACME, child) is JobStatus.ENQUEUED
            await pg.cancel_job(ACME, child)


async def test_a_settle_on_a_remembered_lease_that_moved_elsewhere_is_refused(
    pg_schema: str,
) -> None:
    """A process settles its leases without reading them again; when another process
    canceled the job meanwhile, the flush's guard refuses the remembered state and the
    re-run on the stored one refuses the lease, as with no memory at all."""
    ctx = QueueCtx("acme")
    async with (
        PostgresBackend(default_dsn(), schema=pg_schema) as first,
        PostgresBackend(default_dsn(), schema=pg_schema) as second,
    ):
        job_id = await first.enqueue(ctx, message())
        lease = await first.dequeue(ctx, ["default"])
        assert lease is not None
        assert await second.cancel_job(ctx, job_id) is JobStatus.CANCELED
        conflicts, written = first.conflicts, len(await first.read_events())
        with pytest.raises(JobCanceled):
            await first.ack_complete(ctx, lease)
        assert first.conflicts == conflicts + 1  # it settled the remembered state first
        assert len(await first.read_events()) == written
        info = await first.get_job(ctx, job_id)
        assert info.status is JobStatus.CANCELED and info.result is None
