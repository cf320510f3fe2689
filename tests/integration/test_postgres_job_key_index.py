"""Schema 8: one index of `jobs` holds a job's key unique, finds it by key and by an id
prefix, and a queue at schema 7 is upgraded in place with its jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from dogqueue import JobMessage, JobStatus, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.migrate import quote
from dogqueue.backend.postgres.queries import SCHEMA_VERSION

pytestmark = pytest.mark.postgres

ACME = QueueCtx("acme")
#: Schema 7's two indexes that schema 8 made one.
SCHEMA_7_KEY_INDEXES = (
    "ALTER TABLE jobs ADD CONSTRAINT jobs_tenant_id_job_id_key UNIQUE (tenant_id, job_id);"
    " CREATE INDEX jobs_by_id_pattern ON jobs (job_id text_pattern_ops);"
    " DROP INDEX jobs_by_key; UPDATE schema_version SET version = 7"
)


def message() -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}")


@pytest.fixture
async def conn(pg_schema: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(
        default_dsn(), server_settings={"search_path": quote(pg_schema)}
    )
    try:
        yield connection
    finally:
        await connection.close()


async def indexes_naming_job_id(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        " AND tablename = 'jobs' AND indexdef LIKE '%job_id%' ORDER BY indexname"
    )
    return [str(row[0]) for row in rows]


async def duplicate_key_refused(conn: asyncpg.Connection, job_id: str) -> bool:
    """Whether a second row with a stored job's (tenant, id) is refused (the new row has a
    fresh enqueue_seq, so only the key can refuse it)."""
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO jobs (enqueue_seq, tenant_id, job_id, status, queue, priority,"
                " job_type, run_at, lease_expires_at, idempotency_key, version, state)"
                " SELECT enqueue_seq + 1000000, tenant_id, job_id, status, queue, priority,"
                " job_type, run_at, lease_expires_at, idempotency_key, version, state"
                " FROM jobs WHERE job_id = $1",
                job_id,
            )
    except asyncpg.UniqueViolationError:
        return True
    return False


async def test_a_schema_7_queue_upgrades_in_place_with_its_jobs(
    pg_schema: str, conn: asyncpg.Connection
) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        ids = await backend.enqueue_many(ACME, [message() for _ in range(30)])
    await conn.execute(SCHEMA_7_KEY_INDEXES)
    assert await indexes_naming_job_id(conn) == ["jobs_by_id_pattern", "jobs_tenant_id_job_id_key"]

    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        assert await conn.fetchval("SELECT version FROM schema_version") == SCHEMA_VERSION
        assert await indexes_naming_job_id(conn) == ["jobs_by_key"]
        assert await backend.get_status(ACME, ids[7]) is JobStatus.ENQUEUED
        assert await backend.cancel_job(ACME, ids[8]) is JobStatus.CANCELED
        leases = await backend.dequeue_many(ACME, ["default"], 30)
        assert [lease.job_id for lease in leases] == ids[:8] + ids[9:]
        assert await duplicate_key_refused(conn, ids[3])


async def test_the_key_stays_unique_per_tenant_only(
    pg_schema: str, conn: asyncpg.Connection
) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        [job_id] = await backend.enqueue_many(ACME, [message()])
    assert await duplicate_key_refused(conn, job_id)
    await conn.execute(
        "INSERT INTO jobs (enqueue_seq, tenant_id, job_id, status, queue, priority, job_type,"
        " run_at, version, state) SELECT enqueue_seq + 1, 'other', job_id, status, queue,"
        " priority, job_type, run_at, version, state FROM jobs WHERE job_id = $1",
        job_id,
    )
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE job_id = $1", job_id) == 2


async def test_loads_and_an_id_prefix_read_one_range_of_the_key_index(
    pg_schema: str, conn: asyncpg.Connection
) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        ids = await backend.enqueue_many(ACME, [message() for _ in range(2000)])
    await conn.execute("ANALYZE jobs")
    by_key = await conn.fetch(
        "EXPLAIN SELECT state FROM jobs WHERE tenant_id = $1 AND job_id = $2", "acme", ids[5]
    )
    prefix = await conn.fetch(
        "EXPLAIN SELECT state FROM jobs WHERE job_id LIKE $1", ids[1234][:-3] + "%"
    )
    for plan in (by_key, prefix):
        text = "\n".join(str(row[0]) for row in plan)
        assert "Index Scan using jobs_by_key" in text, text
