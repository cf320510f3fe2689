"""The dashboard's list reads: the SQLite JobBrowser gives exactly what the reference
(ProjectionBrowser, a filter over the projection) gives, page by page, and its queries
walk indexes in order instead of scanning or sorting the jobs table."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from dogqueue.backend.browse import JobBrowser, JobFilter, ProjectionBrowser, summarize
from dogqueue.backend.contract import Backend
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.browser import RARE_STATUSES, Q, SqliteBrowser, page_query
from dogqueue.core.errors import InvalidInput
from dogqueue.core.job import JobInfo
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobStatus

TENANTS = ("acme", "globex", "initech")


async def _fill(backend: Backend, seed: int) -> None:
    draw = random.Random(seed)
    for n in range(180):
        ctx = QueueCtx(draw.choice(TENANTS))
        await backend.enqueue(
            ctx,
            JobMessage(
                job_type=draw.choice(("email", "resize")),
                payload_bytes=b"{}",
                queue=draw.choice(("default", "bulk")),
                max_retries=0,
                idempotency_key=f"order-{n}" if draw.random() < 0.3 else None,
            ),
        )
    for tenant in TENANTS:
        ctx = QueueCtx(tenant)
        for lease in await backend.dequeue_many(ctx, ["default", "bulk"], 30):
            match draw.randrange(4):
                case 0:
                    await backend.ack_complete(ctx, lease)
                case 1:
                    await backend.ack_fail(ctx, lease, "boom", retry=False)
                case 2:
                    await backend.cancel_job(ctx, lease.job_id)
                case _:
                    pass  # stays leased


async def _all_pages(
    browser: JobBrowser, tenant: str | None, filters: JobFilter, size: int
) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await browser.list_jobs(tenant, filters, cursor, size)
        assert len(page.jobs) <= size
        ids += [job.job_id for job in page.jobs]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def _filters(jobs: list[JobInfo]) -> list[JobFilter]:
    created = sorted(job.job_id for job in jobs)
    middle = datetime.fromtimestamp(
        int(created[len(created) // 2][:13].replace("-", ""), 16) / 1000, UTC
    )
    return [
        JobFilter(),
        JobFilter(statuses=frozenset({JobStatus.FAILED})),
        JobFilter(statuses=frozenset({JobStatus.ENQUEUED, JobStatus.CANCELED})),
        JobFilter(job_type="email", queue="bulk"),
        JobFilter(statuses=frozenset({JobStatus.LEASED}), job_type="resize"),
        JobFilter(created_after=middle),
        JobFilter(created_before=middle, queue="default"),
        JobFilter(search="order-1"),
        JobFilter(search=jobs[7].job_id[:10]),
        JobFilter(search="no-such-prefix"),
        JobFilter(search="order_1"),  # LIKE wildcards in a search are plain characters
        JobFilter(search="%"),
    ]


async def test_sqlite_browser_pages_equal_the_reference(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        await _fill(backend, seed=7)
        reference, fast = ProjectionBrowser(backend), SqliteBrowser(backend.path)
        jobs = list((await backend.projected_jobs()).values())
        for filters in _filters(jobs):
            for tenant in (None, *TENANTS, "nobody"):
                expected = await _all_pages(reference, tenant, filters, 500)
                assert expected == [
                    job.job_id
                    for job in sorted(jobs, key=lambda j: -j.enqueue_seq)
                    if (tenant is None or job.tenant_id == tenant) and filters.matches(job)
                ]
                for size in (1, 7, 50):
                    assert await _all_pages(fast, tenant, filters, size) == expected, (
                        filters,
                        tenant,
                        size,
                    )
        now = backend.now() + timedelta(seconds=1)
        assert await fast.tenant_overview(now) == await reference.tenant_overview(now)
        assert await fast.tenant_overview(now) == summarize(jobs, now)
        for job in jobs:
            if job.status is JobStatus.ENQUEUED:
                assert await fast.jobs_ahead(job, now) == await reference.jobs_ahead(job, now)
        fast.close()


async def test_postgres_browser_pages_equal_the_reference(pg_schema: str) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        await _fill(backend, seed=7)
        reference, fast = ProjectionBrowser(backend), backend.browser()
        jobs = list((await backend.projected_jobs()).values())
        for filters in _filters(jobs):
            for tenant in (None, *TENANTS, "nobody"):
                expected = await _all_pages(reference, tenant, filters, 500)
                for size in (1, 7, 50):
                    assert await _all_pages(fast, tenant, filters, size) == expected, (
                        filters,
                        tenant,
                        size,
                    )
        now = backend.now() + timedelta(seconds=1)
        assert await fast.tenant_overview(now) == await reference.tenant_overview(now)
        for job in jobs:
            if job.status is JobStatus.ENQUEUED:
                assert await fast.jobs_ahead(job, now) == await reference.jobs_ahead(job, now)


async def test_bad_cursor_and_page_size_are_refused(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        for browser in (ProjectionBrowser(backend), SqliteBrowser(backend.path)):
            with pytest.raises(InvalidInput, match="cursor"):
                await browser.list_jobs(None, JobFilter(), "1; DROP TABLE jobs", 10)
            for limit in (0, 501):
                with pytest.raises(InvalidInput, match="limit"):
                    await browser.list_jobs(None, JobFilter(), None, limit)
    with pytest.raises(InvalidInput, match="created_after"):
        JobFilter(created_after=datetime(2030, 1, 1))


def _plan(
    conn: sqlite3.Connection, name: str, params: dict[str, object] | tuple[object, ...]
) -> str:
    rows = conn.execute("EXPLAIN QUERY PLAN " + Q[name], params).fetchall()
    return " | ".join(row[-1] for row in rows)


async def test_list_queries_walk_an_index_without_sorting(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        await _fill(backend, seed=1)
    conn = sqlite3.connect(tmp_path / "q.db")
    conn.execute("ANALYZE")
    page = {
        "tenant": "acme",
        "before": 2**62,
        "job_type": None,
        "queue": None,
        "low": None,
        "high": None,
        "limit": 51,
    }
    # A status few jobs are in: its partial index, read in order.
    for status in RARE_STATUSES:
        plan = _plan(conn, f"page_of_{status.value}", page)
        assert "USING INDEX jobs_by_rare_status" in plan and "TEMP B-TREE" not in plan, plan
    # The others: the tenant's rows from the cursor back, in order; the few in flight
    # and a small backlog from their own partial indexes, sorted.
    for walked in ("completed", "enqueued"):
        plan = _plan(conn, "page_of_status_walk", {**page, "status": walked})
        assert "USING INDEX jobs_by_tenant" in plan and "TEMP B-TREE" not in plan, plan
    plan = _plan(conn, "page_of_tenant", page)
    assert "USING INDEX jobs_by_tenant" in plan and "TEMP B-TREE" not in plan, plan
    assert "USING INDEX jobs_leases" in _plan(conn, "page_of_leased", page)
    assert "USING INDEX jobs_ready" in _plan(conn, "page_of_enqueued_sorted", page)
    search = {
        "tenant": "acme",
        "prefix": "order",
        "prefix_end": "order\U0010ffff",
        "before": 2**62,
        "limit": 10,
    }
    assert "jobs_by_id" in _plan(conn, "search_ids", search)
    assert "jobs_by_idempotency_key" in _plan(conn, "search_keys", search)
    assert "SCAN jobs" not in _plan(conn, "tenants", ())
    assert "SEARCH job_counts" in _plan(conn, "counts", ("acme",))
    conn.close()


def test_a_status_page_sorts_few_jobs_and_walks_the_newest_rows_for_many() -> None:
    # 12,000 leased of 246,000: sorting reads 12,000 rows, walking about 1,000.
    assert page_query(JobStatus.LEASED, 12_000, 246_000, 51) == "page_of_status_walk"
    assert page_query(JobStatus.LEASED, 300, 246_000, 51) == "page_of_leased"
    assert page_query(JobStatus.ENQUEUED, 0, 246_000, 51) == "page_of_enqueued_sorted"
    assert page_query(JobStatus.ENQUEUED, 200_000, 246_000, 51) == "page_of_status_walk"
    assert page_query(JobStatus.COMPLETED, 10, 246_000, 51) == "page_of_status_walk"
    assert page_query(JobStatus.FAILED, 200_000, 246_000, 51) == "page_of_failed"


async def _fan_in(backend: Backend) -> list[JobInfo]:
    """Two parents and a job after both, plus a job after the first parent only."""
    ctx = QueueCtx(TENANTS[0])
    part = JobMessage(job_type="step", payload_bytes=b"{}")
    ids = await backend.enqueue_many(
        ctx,
        [
            part,
            part,
            msgspec.structs.replace(part, after_earlier=(0, 1)),
            msgspec.structs.replace(part, after_earlier=(0,)),
        ],
    )
    return [await backend.get_job(ctx, job_id) for job_id in ids]


async def _same_dependents(reference: JobBrowser, fast: JobBrowser, jobs: list[JobInfo]) -> None:
    first, _second, fan_in, after_first = jobs
    assert [j.job_id for j in await reference.dependents(first, 50)] == [
        fan_in.job_id,
        after_first.job_id,
    ]
    for job in jobs:
        for limit in (1, 50):
            expected = [j.job_id for j in await reference.dependents(job, limit)]
            assert [j.job_id for j in await fast.dependents(job, limit)] == expected


async def test_sqlite_and_postgres_list_dependents_like_the_reference(
    tmp_path: Path, pg_schema: str
) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        fast = SqliteBrowser(backend.path)
        await _same_dependents(ProjectionBrowser(backend), fast, await _fan_in(backend))
        fast.close()
    async with PostgresBackend(default_dsn(), schema=pg_schema) as pg:
        await _same_dependents(ProjectionBrowser(pg), pg.browser(), await _fan_in(pg))
