"""A sequencer step far behind reads about as many events as it may number, not the whole
backlog: `sealable` runs as ordered index ranges cut at the step's limit (with stale
statistics the planner preferred a bitmap scan of every event past the cursor, then a
sort), and without JIT compilation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dogqueue import JobMessage, QueueCtx
from dogqueue.audit.verify import verify_log
from dogqueue.backend.postgres import PostgresBackend, sequencer
from dogqueue.backend.postgres import backend as backend_module
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.queries import Q

pytestmark = pytest.mark.postgres

BACKLOG = 3_000
LIMIT = 500


def rows_read(node: dict[str, Any], relation: str) -> list[int]:
    """Rows each plan node on `relation` produced, over all its loops."""
    found = []
    if node.get("Relation Name") == relation:
        found.append(int(node["Actual Rows"]) * int(node["Actual Loops"]))
    for child in node.get("Plans", []):
        found += rows_read(child, relation)
    return found


async def test_a_step_far_behind_reads_no_more_events_than_its_limit(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_module, "SEAL_INTERVAL", 3600.0)  # no background step
    message = JobMessage(job_type="t", payload_bytes=b"{}")
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        for _ in range(BACKLOG // 100):
            await backend.enqueue_many(QueueCtx("acme"), [message] * 100)
        async with backend.pool.acquire() as conn, conn.transaction():
            await sequencer.bound_idle_step(conn)
            assert await conn.fetchval("SHOW jit") == "off"
            horizon, _ = await conn.fetchrow(Q["own_writers"])
            plan = json.loads(
                await conn.fetchval(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) {Q['sealable']}", "0", 0, horizon, [], LIMIT
                )
            )[0]["Plan"]
        assert int(plan["Actual Rows"]) == LIMIT
        assert max(rows_read(plan, "events")) <= LIMIT
        assert await backend.seal() == BACKLOG  # and the steps number the whole backlog
        report = await verify_log(backend.log_reader())
        assert report.ok and report.events == BACKLOG
