"""Schemas are sealed off from each other: a schema name is an identifier, quoted
everywhere; a name PostgreSQL would cut or refuse is refused before anything is created;
a role allowed only rows opens a migrated queue; every driver error is a StorageError."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from dogqueue import InvalidInput, JobMessage, QueueCtx, StorageError
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.migrate import quote

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
ACME = QueueCtx("acme")
MESSAGE = JobMessage(job_type="t", payload_bytes=b"{}")


async def _drop(names: list[str]) -> None:
    conn = await asyncpg.connect(default_dsn())
    try:
        for name in names:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote(name)} CASCADE")
    finally:
        await conn.close()


async def _exists(name: str) -> bool:
    conn = await asyncpg.connect(default_dsn())
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", name))
    finally:
        await conn.close()


@pytest.fixture
async def names() -> AsyncIterator[Callable[[str], str]]:
    """Make unique schema names from a pattern ({} is a fresh tag); dropped after."""
    made: list[str] = []

    def make(pattern: str) -> str:
        name = pattern.format(uuid.uuid4().hex[:10])
        made.append(name)
        return name

    yield make
    await _drop(made)


async def _job_ids(schema: str) -> set[str]:
    async with PostgresBackend(default_dsn(), schema=schema) as backend:
        return {job.job_id for job in (await backend.projected_jobs()).values()}


async def test_names_that_differ_in_case_or_by_a_comma_are_two_queues(
    names: Callable[[str], str],
) -> None:
    tag = uuid.uuid4().hex[:10]
    lower, upper = names(f"rt3_victim_{tag}"), names(f"RT3_VICTIM_{tag}")
    plain, listed = names(f"x_{tag}"), names(f"x_{tag}, public")
    async with PostgresBackend(default_dsn(), schema=lower) as victim:
        secret = await victim.enqueue(ACME, MESSAGE)
    async with PostgresBackend(default_dsn(), schema=plain) as x:
        x_job = await x.enqueue(ACME, MESSAGE)
    async with PostgresBackend(default_dsn(), schema=upper) as attacker:
        assert await attacker.dequeue(ACME, ["default"]) is None
        assert await attacker.projected_jobs() == {}
        mine = await attacker.enqueue(ACME, MESSAGE)
    async with PostgresBackend(default_dsn(), schema=listed) as other:
        assert await other.dequeue(ACME, ["default"]) is None
        assert await other.read_events() == []
    assert await _job_ids(lower) == {secret}
    assert await _job_ids(upper) == {mine}
    assert await _job_ids(plain) == {x_job}


async def test_names_postgresql_would_cut_are_refused_before_anything_is_created(
    names: Callable[[str], str],
) -> None:
    tag = uuid.uuid4().hex[:10]
    long_a, long_b = f"q{tag}".ljust(63, "a") + "1", f"q{tag}".ljust(63, "a") + "2"
    for name in (long_a, long_b, "é" * 32):  # 64 bytes each
        with pytest.raises(InvalidInput, match="schema"):
            PostgresBackend(default_dsn(), schema=name)
        assert not await _exists(name.encode()[:63].decode(errors="ignore"))
    # At the limit, names differing in their last byte are two queues (and their
    # NOTIFY channels, which are digests, are two channels).
    first, second = names(long_a[:62] + "1"), names(long_a[:62] + "2")
    async with (
        PostgresBackend(default_dsn(), schema=first) as a,
        PostgresBackend(default_dsn(), schema=second) as b,
    ):
        job = await a.enqueue(ACME, MESSAGE)
        assert await b.dequeue(ACME, ["default"]) is None
        assert a._ready_channel != b._ready_channel
        assert len(a._ready_channel.encode()) <= 63
        assert (await a.dequeue(ACME, ["default"])) is not None
    assert await _job_ids(first) == {job}


@pytest.mark.parametrize("pattern", ['we"ird_{}', "with space {}", "ünïcødé_{}", 'Mixed"; DROP {}'])
async def test_hostile_names_open_work_and_read_back(
    names: Callable[[str], str], pattern: str
) -> None:
    schema = names(pattern)
    async with PostgresBackend(default_dsn(), schema=schema) as backend:
        job_id = await backend.enqueue(ACME, MESSAGE)
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None and lease.job_id == job_id
        await backend.ack_complete(ACME, lease)
        assert [e.seq for e in await backend.read_events()] == [1, 2, 3]
    assert await _exists(schema)
    log = backend.log_reader()  # closed: reads the stored schema on its own
    try:
        assert len(await log.events()) == 3
    finally:
        await log.close()


async def test_a_role_allowed_only_rows_opens_a_migrated_queue(
    names: Callable[[str], str],
) -> None:
    schema = names("dml_{}")
    role = f"dq_dml_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    migrated = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dogqueue", "migrate", "--db", f"{default_dsn()}?schema={schema}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "migrated from version 0" in migrated.stdout
    admin = await asyncpg.connect(default_dsn())
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        await admin.execute(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {role}")
        await admin.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {quote(schema)}"
            f" TO {role}"
        )
        await admin.execute(
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quote(schema)} TO {role}"
        )
        base, _, database = default_dsn().rpartition("/")
        scheme, _, rest = base.partition("://")
        host = rest.rpartition("@")[2]
        dsn = f"{scheme}://{role}@{host}/{database}"
        async with PostgresBackend(dsn, schema=schema) as backend:
            job_id = await backend.enqueue(ACME, MESSAGE)
            lease = await backend.dequeue(ACME, ["default"])
            assert lease is not None and lease.job_id == job_id
            await backend.ack_complete(ACME, lease)
            assert [e.seq for e in await backend.read_events()] == [1, 2, 3]
        # An unmigrated schema: the role may not create it, and says what to do.
        with pytest.raises(StorageError, match="dogqueue migrate"):
            async with PostgresBackend(dsn, schema=names("unmigrated_{}")):
                pass
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_a_session_terminated_mid_enqueue_is_a_storage_error(
    names: Callable[[str], str],
) -> None:
    schema = names("terminated_{}")
    async with PostgresBackend(default_dsn(), schema=schema, pool_size=4) as backend:
        await backend.enqueue(ACME, MESSAGE)  # the schema exists before the lock below
        events = f"{quote(schema)}.events"
        blocker = await asyncpg.connect(default_dsn())
        killer = await asyncpg.connect(default_dsn())
        try:
            # Hold the events table so every enqueue's statement is in flight and waits,
            # then terminate the sessions waiting on it: no timing luck needed.
            blocking = blocker.transaction()
            await blocking.start()
            await blocker.execute(f"LOCK TABLE {events} IN ACCESS EXCLUSIVE MODE")
            enqueues = [asyncio.ensure_future(backend.enqueue(ACME, MESSAGE)) for _ in range(8)]
            terminated = 0
            async with asyncio.timeout(120):  # a bound on a hang, not a timing assertion
                while not all(e.done() for e in enqueues):
                    terminated += await killer.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                        " WHERE relation = $1::text::regclass AND NOT granted"
                        " AND pid <> pg_backend_pid()",
                        events,
                    )
                    await asyncio.sleep(0.01)
            await blocking.rollback()
        finally:
            await blocker.close()
            await killer.close()
        outcomes = await asyncio.gather(*enqueues, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        # Enqueues in flight on the terminated sessions failed, each as a StorageError.
        assert terminated and errors, outcomes
        assert all(isinstance(error, StorageError) for error in errors), errors
        # The pool reconnects: the queue goes on.
        with contextlib.suppress(StorageError):
            await backend.enqueue(ACME, MESSAGE)
        await backend.enqueue(ACME, MESSAGE)
