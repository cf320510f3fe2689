"""Schemas 6 and 7 (the lighter projection): a log written under schema 4 is upgraded in
place, its events untouched, and every read that used a dropped index answers the same;
schema 7's status counts are counted from the rows."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.audit.verify import verify_log
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.log import SqliteLogReader
from dogqueue.backend.sqlite.queries import SCHEMA_VERSION, Q

ACME, GLOBEX = QueueCtx("acme"), QueueCtx("globex")
START = datetime(2030, 1, 1, tzinfo=UTC)


def _message(run_in: int | None = None, queue: str = "default") -> JobMessage:
    run_at = None if run_in is None else START + timedelta(seconds=run_in)
    return JobMessage(job_type="mail", payload_bytes=b"{}", queue=queue, run_at=run_at)


def _as_schema_4(path: Path) -> None:
    """Take away what schemas 5 to 11 added, put back what 6 and 7 removed, and say so:
    the file a schema-4 build leaves (its jobs have no parents, so no edge is lost)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("DROP TABLE chain_heads_position")
        conn.execute("DROP TABLE projection_checkpoint")
        conn.execute("DROP INDEX events_by_idempotency_key")
        conn.execute("ALTER TABLE events DROP COLUMN idempotency_key")
        conn.execute("DROP TABLE workers")
        conn.execute("DROP TABLE job_counts")
        conn.execute("DROP INDEX jobs_by_rare_status")
        conn.execute("DROP INDEX jobs_by_tenant")
        conn.execute("CREATE INDEX jobs_by_status ON jobs (tenant_id, status)")
        conn.execute("DROP TABLE job_edges")
        conn.execute("CREATE INDEX jobs_schedule ON jobs (queue, run_at) WHERE status = 'enqueued'")
        conn.execute("UPDATE schema_version SET version = 4")
        conn.commit()
    finally:
        conn.close()


def _rows(path: Path, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


async def test_a_schema_4_log_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    clock = FakeClock(START)
    async with SqliteBackend(path, clock=clock) as backend:
        await backend.enqueue(ACME, _message())
        await backend.enqueue(ACME, _message(run_in=300, queue="mail"))
        await backend.enqueue(GLOBEX, _message(run_in=120))
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None
        await backend.ack_complete(ACME, lease)
        jobs = await backend.projected_jobs()
    _as_schema_4(path)
    events = _rows(path, "SELECT * FROM events ORDER BY seq")

    async with SqliteBackend(path, clock=clock) as backend:
        assert await backend.projected_jobs() == jobs
        assert await backend.next_run_at(["default", "mail"]) == START + timedelta(seconds=120)
        assert await backend.next_run_at(["mail"]) == START + timedelta(seconds=300)
        assert await backend.next_run_at(["mail"], ["globex"]) is None
        assert await backend.next_run_at(["other"]) is None
        clock.advance(timedelta(seconds=120))
        assert await backend.ready_tenants(["default", "mail"]) == ["globex"]
        await backend.enqueue(ACME, _message())

    assert _rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    indexes = {name for (name,) in _rows(path, "SELECT name FROM sqlite_master")}
    assert "jobs_schedule" not in indexes and "jobs_by_status" not in indexes
    counted = "SELECT tenant_id, status, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2"
    stored = "SELECT tenant_id, status, jobs FROM job_counts WHERE jobs > 0 ORDER BY 1, 2"
    assert _rows(path, stored) == _rows(path, counted)
    assert ("acme", "enqueued", 2) in _rows(path, stored)
    upgraded = _rows(path, "SELECT * FROM events ORDER BY seq")[: len(events)]
    assert [row[:-1] for row in upgraded] == events  # schema 9 added each event's key
    log = SqliteLogReader(path)
    try:
        report = await verify_log(log)
    finally:
        await log.close()
    assert report.ok, report.problems


async def test_next_run_at_reads_index_seeks_only(tmp_path: Path) -> None:
    """No table scan and no sort, however many jobs there are."""
    path = tmp_path / "queue.db"
    async with SqliteBackend(path) as backend:
        await backend.enqueue(ACME, _message())
    for name, params in (
        ("next_run_at_of_tenants", ('["acme"]', '["default"]')),
        ("tenants_with_enqueued_jobs", ()),
    ):
        plan = " | ".join(
            str(row[3]) for row in _rows(path, f"EXPLAIN QUERY PLAN {Q[name]}", params)
        )
        assert "SCAN jobs" not in plan and "TEMP B-TREE" not in plan, plan
        assert "jobs_ready" in plan, plan
