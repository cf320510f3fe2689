"""The JobBrowser of a PostgreSQL queue: keyset-paged reads on the backend's pool."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.sqlfiles import load_queries
from dogqueue.backend.sqlite.timecodec import from_micros, to_micros
from dogqueue.core.codec import decode_job
from dogqueue.core.job import JobInfo
from dogqueue.core.status import JobStatus
from dogqueue.web.browser import (
    JobFilter,
    JobPage,
    TenantSummary,
    check_page,
    page_of,
    parse_cursor,
    summaries,
)

Q = load_queries("dogqueue.web", "postgres_browser.sql")
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
    """A JobBrowser on an open PostgresBackend."""

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend

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
        async with self.backend.pool.acquire() as conn:
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
        async with self.backend.pool.acquire() as conn:
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
        async with self.backend.pool.acquire() as conn:
            rows = await conn.fetch(Q["overview"], to_micros(now))
        counts: dict[str, Counter[JobStatus]] = {}
        ready: Counter[str] = Counter()
        oldest: dict[str, datetime] = {}
        for tenant, status, count, due, first in rows:
            counts.setdefault(tenant, Counter())[JobStatus(status)] = int(count)
            ready[tenant] += int(due)
            if first is not None:
                oldest[tenant] = from_micros(int(first))
        return summaries(counts, ready, oldest)

    async def jobs_ahead(self, job: JobInfo, now: datetime) -> int:
        """How many ready jobs of the job's tenant and queue would be leased before it."""
        async with self.backend.pool.acquire() as conn:
            count = await conn.fetchval(
                Q["ahead"], job.tenant_id, job.job_id, job.message.queue, to_micros(now)
            )
        return int(count or 0)

    async def dependents(self, job: JobInfo, limit: int) -> list[JobInfo]:
        """The first `limit` jobs whose `after` names `job`, oldest first."""
        async with self.backend.pool.acquire() as conn:
            rows = await conn.fetch(Q["dependents"], job.tenant_id, job.job_id, limit)
        return [decode_job(bytes(state)) for (state,) in rows]
