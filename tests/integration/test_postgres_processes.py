"""Many processes on one PostgreSQL queue: no double lease, one winner per idempotency
key, fencing across a stopped process, and log tailers that see every event once even
when a write commits late."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from dogqueue import JobStatus, QueueCtx, rebuild
from dogqueue.backend.postgres import PostgresBackend, sequencer
from dogqueue.backend.postgres import backend as backend_module
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.log import PostgresLog
from dogqueue.log.chain import GENESIS, chain_hash
from dogqueue.log.reader import LogReader
from tests.integration.pg_client import message

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
TENANTS = [f"tenant-{i}" for i in range(4)]


def client(schema: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.pg_client", schema, *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def finish(process: subprocess.Popen[str], reader: Executor | None = None) -> str:
    loop = asyncio.get_running_loop()
    out, err = await loop.run_in_executor(reader, process.communicate, None, 240)
    assert process.returncode == 0, err
    return out


@pytest.fixture
async def pg(pg_schema: str) -> AsyncIterator[PostgresBackend]:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        yield backend


async def assert_chains_verify(log: LogReader) -> int:
    """Recompute every tenant's chain over the positions; they must be dense."""
    heads: dict[str, bytes] = {}
    records = await log.records()
    assert [r.pos for r in records] == list(range(1, len(records) + 1))
    for record in records:
        digest = chain_hash(heads.get(record.tenant_id, GENESIS), record.pos, record.data)
        assert record.hash == digest, f"chain broken at {record.pos}"
        heads[record.tenant_id] = digest
    stored = await log.chain_heads()
    assert {t: h for t, (_, h) in stored.items()} == heads
    assert await log.unsealed() == []
    return len(records)


@pytest.mark.slow
async def test_sixteen_processes_lease_twenty_thousand_jobs_once(
    pg: PostgresBackend, pg_schema: str
) -> None:
    jobs = 20_000
    for tenant in TENANTS:
        for _ in range(jobs // len(TENANTS) // 1_000):
            await pg.enqueue_many(QueueCtx(tenant), [message() for _ in range(1_000)])
    processes = [client(pg_schema, "drain", "16", *TENANTS) for _ in range(16)]
    # Read every process's pipes at once, a thread each (the default executor has only
    # cpu + 4): one blocked on a full pipe would stop its event loop mid-step.
    with ThreadPoolExecutor(len(processes)) as readers:
        outputs = await asyncio.gather(*(finish(p, readers) for p in processes))

    leased = [line for out in outputs for line in out.split("\n") if line]
    assert len(leased) == len(set(leased)) == jobs  # no (job, token) leased twice
    events = await pg.read_events()
    completed = Counter(e.job_id for e in events if e.type == "completed")
    assert len(completed) == jobs and set(completed.values()) == {1}
    types = Counter(e.type for e in events)
    assert types == {"enqueued": jobs, "leased": jobs, "completed": jobs}
    projected = await pg.projected_jobs()
    assert {job.status for job in projected.values()} == {JobStatus.COMPLETED}
    assert rebuild(events) == projected
    assert await assert_chains_verify(pg.log_reader()) == 3 * jobs


async def test_a_read_sees_every_event_other_sessions_committed(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More unnumbered events than one sequencer step takes: a read from a session that
    wrote none of them still sees them all (it steps until a step is not full)."""
    monkeypatch.setattr(sequencer, "STEP_LIMIT", 3)
    async with (
        PostgresBackend(default_dsn(), schema=pg_schema) as writer,
        PostgresBackend(default_dsn(), schema=pg_schema) as reader,
    ):
        ids = await writer.enqueue_many(QueueCtx("acme"), [message() for _ in range(20)])
        events = await reader.read_events()
        assert sorted(e.job_id for e in events) == sorted(ids)
        assert [e.seq for e in events] == list(range(1, 21))


async def test_a_sequencer_behind_by_more_than_a_step_catches_up_before_close_returns(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers can outrun one step per interval: closing numbers every event it wrote,
    stepping while steps are full."""
    monkeypatch.setattr(sequencer, "STEP_LIMIT", 3)
    monkeypatch.setattr(backend_module, "SEAL_INTERVAL", 3600.0)  # no background step
    async with PostgresBackend(default_dsn(), schema=pg_schema) as writer:
        await writer.enqueue_many(QueueCtx("acme"), [message() for _ in range(20)])
    log = PostgresLog(dsn=default_dsn(), schema=pg_schema)
    try:
        assert await log.unsealed() == []
        assert await log.last_position() == 20
    finally:
        await log.close()


async def test_sixteen_processes_race_for_one_idempotency_key(
    pg: PostgresBackend, pg_schema: str
) -> None:
    await pg.open()
    processes = [client(pg_schema, "enqueue-key", "only-once") for _ in range(16)]
    lines = [(await finish(p)).split() for p in processes]
    created = [job_id for verdict, job_id in lines if verdict == "created"]
    assert len(created) == 1
    assert [job_id for verdict, job_id in lines if verdict == "exists"] == created * 15
    assert len(await pg.projected_jobs()) == 1


async def test_a_stopped_worker_loses_its_lease_to_another_process(
    pg: PostgresBackend, pg_schema: str
) -> None:
    ctx = QueueCtx("acme")
    job_id = await pg.enqueue(ctx, message())
    holder = client(pg_schema, "lease-and-ack", "1")
    assert holder.stdout is not None and holder.stdin is not None
    line = await asyncio.to_thread(holder.stdout.readline)
    assert line.split() == ["leased", job_id]
    holder.send_signal(signal.SIGSTOP)
    try:
        lease = None
        for _ in range(300):  # the server's clock runs out the one-second lease
            lease = await pg.dequeue(ctx, ["default"])
            if lease is not None:
                break
            await asyncio.sleep(0.02)
        assert lease is not None and lease.job_id == job_id and lease.attempt == 2
        await pg.ack_complete(ctx, lease)
    finally:
        holder.send_signal(signal.SIGCONT)
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert (await finish(holder)).split() == ["LeaseLost"]
    history = [e.type for e in await pg.history(ctx, job_id)]
    assert history == ["enqueued", "leased", "expired", "leased", "completed"]


async def test_tailers_see_every_event_once_when_a_write_commits_late(
    pg: PostgresBackend, pg_schema: str
) -> None:
    ctx = QueueCtx("acme")
    # A transaction that wrote an event and stays open while others commit after it.
    late = await asyncpg.connect(default_dsn(), server_settings={"search_path": pg_schema})
    transaction = late.transaction()
    await transaction.start()
    job_id = await pg.enqueue_in_transaction(late, ctx, message("late"))
    seen: list[int] = []
    versions: dict[str, int] = {}
    reader = pg.log_reader()

    async def tail_until(count: int) -> None:
        while len(seen) < count:
            for event in await reader.events(after=seen[-1] if seen else 0, limit=100):
                seen.append(event.seq)
                assert event.version > versions.get(event.job_id, 0)
                versions[event.job_id] = event.version
            await asyncio.sleep(0.01)

    writers = [client(pg_schema, "churn", "832") for _ in range(4)]  # up to 4 x 832 x 3 events
    await asyncio.sleep(2)
    await transaction.commit()
    await late.close()
    for process in writers:
        await finish(process)
    # Every committed event, counted on the table itself (not through the positions).
    async with pg.pool.acquire() as conn:
        total = int(await conn.fetchval("SELECT count(*) FROM events"))
    assert total > 4 * 832  # at least every enqueue of the writers
    await asyncio.wait_for(tail_until(total), 300)
    assert seen == list(range(1, total + 1))  # every event once, gap-free
    assert job_id in versions
    assert await assert_chains_verify(reader) == total


async def test_server_clock_governs_leases_when_no_clock_is_given(pg: PostgresBackend) -> None:
    ctx = QueueCtx("acme")
    await pg.enqueue(ctx, message())
    lease = await pg.dequeue(ctx, ["default"], lease_duration=timedelta(seconds=30))
    assert lease is not None
    conn = await asyncpg.connect(default_dsn())
    try:
        server_now = await conn.fetchval("SELECT clock_timestamp()")
    finally:
        await conn.close()
    assert abs((lease.lease_expires_at - server_now) - timedelta(seconds=30)) < timedelta(seconds=5)
