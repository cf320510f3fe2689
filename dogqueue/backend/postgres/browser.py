"""The JobBrowser of a PostgreSQL queue: keyset-paged reads on the backend's pool."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

import asyncpg

from dogqueue.backend.browse import (
    JobFilter,
    JobPage,
    TenantSummary,
    check_page,
    earliest_ready_paged,
    page_of,
    parse_cursor,
    summaries,
)
from dogqueue.backend.kit.rows import to_micros
from dogqueue.backend.kit.sqlfiles import load_queries
from dogqueue.core.codec import decode_job
from dogqueue.core.job import JobInfo
from dogqueue.core.status import JobStatus

Q = load_queries("dogqueue.backend.postgres", "sql/browser.sql")
#: Rows read per query while filling a page.
CHUNK = 500
#: Rows a page may scan before it is returned short (a search over a huge queue).
SCAN_LIMIT = 50_000
_NO_CURSOR = 2**63 - 1
#: Jobs read per search query (ids, then keys), as on SQLite.
SEARCH_LIMIT = 2_000


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with `prefix` (its wildcards escaped)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class PostgresBrowser:
    """A JobBrowser on an open PostgreSQL queue, read through `pool()` (the backend's
    pool, whose search_path names the queue's schema)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def list_jobs(
        self, tenant_id: str | None, filters: JobFilter, cursor: str | None, limit: int
    ) -> JobPage:
        """Jobs matching `filters`, newest first (by enqueue order), after `cursor`."""
        check_page(limit)
        before = parse_cursor(cursor) or _NO_CURSOR
        if filters.search:
            return await self._search(tenant_id, filters, before, limit)
        statuses = sorted(s.value for s in filters.statuses) or None
        found: list[JobInfo] = []
        scanned = 0
        async with self._pool().acquire() as conn:
            while len(found) <= limit and scanned < SCAN_LIMIT:
                rows = await conn.fetch(
                    Q["page"], tenant_id, statuses, filters.job_type, filters.queue, before, CHUNK
                )
                scanned += len(rows)
                for (state,) in rows:
                    job = decode_job(bytes(state))
                    before = job.enqueue_seq
                    if filters.matches(job):
                        found.append(job)
                if len(rows) < CHUNK:
                    break
        return page_of(found[: limit + 1], limit)

    async def _search(
        self, tenant_id: str | None, filters: JobFilter, before: int, limit: int
    ) -> JobPage:
        """Jobs whose id or key starts with `filters.search` (at most SEARCH_LIMIT of
        each), through the byte-wise pattern indexes; the other filters on the rows."""
        assert filters.search is not None
        pattern = _like_prefix(filters.search)
        found: dict[int, JobInfo] = {}
        async with self._pool().acquire() as conn:
            for query in ("search_ids", "search_keys"):
                for seq, state in await conn.fetch(
                    Q[query], tenant_id, pattern, before, SEARCH_LIMIT
                ):
                    job = decode_job(bytes(state))
                    if filters.matches(job):
                        found[seq] = job
        newest = sorted(found, reverse=True)[: limit + 1]
        return page_of([found[seq] for seq in newest], limit)

    async def tenant_overview(self, now: datetime) -> list[TenantSummary]:
        """Every tenant that has jobs, by tenant id."""
        async with self._pool().acquire() as conn:
            rows = await conn.fetch(Q["overview"], to_micros(now))
        counts: dict[str, Counter[JobStatus]] = {}
        ready: Counter[str] = Counter()
        for tenant, status, count, due in rows:
            counts.setdefault(tenant, Counter())[JobStatus(status)] = int(count)
            ready[tenant] += int(due)
        oldest: dict[str, datetime] = {}
        for tenant in ready:
            since = await self._earliest_ready(tenant, now) if ready[tenant] else None
            if since is not None:
                oldest[tenant] = since
        return summaries(counts, ready, oldest)

    async def _earliest_ready(self, tenant: str, now: datetime) -> datetime | None:
        """When the tenant's longest-waiting ready job became ready."""
        async with self._pool().acquire() as conn, conn.transaction(readonly=True):
            cursor = await conn.cursor(Q["ready_by_run_at"], tenant, to_micros(now))

            async def ready_after(_: None, limit: int) -> list[tuple[None, JobInfo]]:
                return [(None, decode_job(bytes(state))) for (state,) in await cursor.fetch(limit)]

            return await earliest_ready_paged(ready_after)

    async def jobs_ahead(self, job: JobInfo, now: datetime) -> int:
        """How many ready jobs of the job's tenant and queue would be leased before it."""
        async with self._pool().acquire() as conn:
            count = await conn.fetchval(
                Q["ahead"], job.tenant_id, job.job_id, job.message.queue, to_micros(now)
            )
        return int(count or 0)

    async def dependents(self, job: JobInfo, limit: int) -> list[JobInfo]:
        """The first `limit` jobs whose `after` names `job`, oldest first."""
        async with self._pool().acquire() as conn:
            rows = await conn.fetch(Q["dependents"], job.tenant_id, job.job_id, limit)
        return [decode_job(bytes(state)) for (state,) in rows]
