"""The JobBrowser of a SQLite log: indexed, keyset-paged reads on its own read-only
connection, run in a worker thread."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

from dogqueue.backend.browse import (
    JobFilter,
    JobPage,
    TenantSummary,
    check_page,
    page_of,
    parse_cursor,
)
from dogqueue.backend.kit.rows import to_micros
from dogqueue.backend.kit.sqlfiles import load_queries
from dogqueue.backend.sqlite.connection import connect, translate
from dogqueue.core.codec import decode_job
from dogqueue.core.job import JobInfo
from dogqueue.core.order import earliest_ready_since
from dogqueue.core.status import JobStatus

#: Matches read per search query: a search shows the newest of at most these.
SEARCH_LIMIT = 2_000
_NO_CURSOR = 2**63 - 1

Q = load_queries("dogqueue.backend.sqlite", "sql/browser.sql")
#: Statuses that `jobs_by_rare_status` indexes (schema 7): few jobs are in them.
RARE_STATUSES = (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.WAITING)


def _page(index: str, status: str) -> str:
    return Q["page"].replace("{index}", index).replace("{status}", status)


# A partial index applies only to a status written out in the query's text.
for _status in RARE_STATUSES:
    Q[f"page_of_{_status.value}"] = _page("jobs_by_rare_status", f"AND status = '{_status}'")
#: Every status: the tenant's rows from the cursor back.
Q["page_of_tenant"] = _page("jobs_by_tenant", "")
#: The statuses most jobs are in: the tenant's rows from the cursor back, kept by status.
Q["page_of_status_walk"] = _page("jobs_by_tenant", "AND status = :status")
#: Statuses whose jobs a partial index holds, unordered: a page of them is sorted.
Q["page_of_leased"] = _page("jobs_leases", "AND status = 'leased'")
Q["page_of_enqueued_sorted"] = _page("jobs_ready", "AND status = 'enqueued'")
_SORTED_QUERIES = {
    JobStatus.LEASED: "page_of_leased",
    JobStatus.ENQUEUED: "page_of_enqueued_sorted",
}


def page_query(status: JobStatus, count: int, total: int, limit: int) -> str:
    """The query that lists `limit` of a tenant's `count` jobs of `status` (of `total`
    jobs) reading the fewest rows: sorting reads all `count`; walking the tenant's rows
    from the newest back reads about `limit * total / count` of them."""
    if status in RARE_STATUSES:
        return f"page_of_{status.value}"
    sorted_query = _SORTED_QUERIES.get(status)
    if sorted_query is not None and count * count <= limit * total:
        return sorted_query
    return "page_of_status_walk"


class SqliteBrowser:
    """A JobBrowser on the SQLite log at `path` (opened read-only on first use)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        before_read: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        #: Brings the checkpoint tables (what this browser reads) to the end of the
        #: log; called at the start of every read, so a page shows every committed
        #: event (the backend passes its checkpointer's flush).
        self._before_read = before_read
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection; the next read opens a new one."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def _rows(self, name: str, params: dict[str, Any] | tuple[Any, ...]) -> list[Any]:
        return await asyncio.to_thread(self._rows_now, name, params)

    async def _current(self) -> None:
        if self._before_read is not None:
            await self._before_read()

    def _rows_now(self, name: str, params: dict[str, Any] | tuple[Any, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._connection().execute(Q[name], params).fetchall()
            except sqlite3.Error as error:
                raise translate(error) from error

    def _connection(self) -> sqlite3.Connection:
        """The read-only connection (opened on first use); the caller holds the lock."""
        if self._conn is None:
            self._conn = connect(self.path, "NORMAL", read_only=True)
        return self._conn

    async def tenants(self) -> list[str]:
        """Every tenant that has jobs."""
        await self._current()
        return [row[0] for row in await self._rows("tenants", ())]

    async def list_jobs(
        self, tenant_id: str | None, filters: JobFilter, cursor: str | None, limit: int
    ) -> JobPage:
        """Jobs matching `filters`, newest first (by enqueue order), after `cursor`."""
        await self._current()
        check_page(limit)
        before = parse_cursor(cursor)
        before = _NO_CURSOR if before is None else before
        tenants = [tenant_id] if tenant_id is not None else await self.tenants()
        found: dict[int, JobInfo] = {}
        for tenant in tenants:
            if filters.search:
                rows = await self._search(tenant, filters.search, before)
            else:
                rows = await self._by_status(tenant, filters, before, limit + 1)
            for seq, state in rows:
                job = decode_job(state)
                if filters.matches(job):
                    found[seq] = job
        newest = sorted(found, reverse=True)[: limit + 1]
        return page_of([found[seq] for seq in newest], limit)

    async def _by_status(
        self, tenant: str, filters: JobFilter, before: int, limit: int
    ) -> list[Any]:
        low, high = filters.id_range
        params = {
            "tenant": tenant,
            "before": before,
            "job_type": filters.job_type,
            "queue": filters.queue,
            "low": low,
            "high": high,
            "limit": limit,
        }
        statuses = filters.statuses or frozenset(JobStatus)
        if len(statuses) == len(JobStatus):  # every status: the tenant's newest rows
            return await self._rows("page_of_tenant", params)
        counts: dict[str, int] = dict(await self._rows("counts", (tenant,)))
        total = sum(counts.values())
        rows: list[Any] = []
        for status in sorted(statuses):
            query = page_query(status, counts.get(status.value, 0), total, limit)
            rows += await self._rows(query, {**params, "status": status.value})
        return rows

    async def _search(self, tenant: str, prefix: str, before: int) -> list[Any]:
        params = {
            "tenant": tenant,
            "prefix": prefix,
            "prefix_end": prefix + "\U0010ffff",
            "before": before,
            "limit": SEARCH_LIMIT,
        }
        return await self._rows("search_ids", params) + await self._rows("search_keys", params)

    async def tenant_overview(self, now: datetime) -> list[TenantSummary]:
        """Every tenant that has jobs, by tenant id."""
        await self._current()
        summaries = []
        for tenant in await self.tenants():
            counts = {
                JobStatus(status): count for status, count in await self._rows("counts", (tenant,))
            }
            [(ready,)] = await self._rows("ready", (tenant, to_micros(now)))
            summaries.append(
                TenantSummary(
                    tenant_id=tenant,
                    counts=counts,
                    ready=ready,
                    scheduled=counts.get(JobStatus.ENQUEUED, 0) - ready,
                    oldest_ready_at=await self._earliest_ready(tenant, now) if ready else None,
                )
            )
        return summaries

    async def _earliest_ready(self, tenant: str, now: datetime) -> datetime | None:
        """When the tenant's longest-waiting ready job became ready."""
        return await asyncio.to_thread(self._earliest_ready_now, tenant, to_micros(now))

    def _earliest_ready_now(self, tenant: str, now: int) -> datetime | None:
        # One sort of the ready jobs' keys by run_at; states are read only as far as
        # the core's walk goes (usually one or two).
        with self._lock:
            try:
                conn = self._connection()
                keys = conn.execute(Q["ready_by_run_at"], (tenant, now))

                def ready() -> Iterator[JobInfo]:
                    for (seq,) in keys:
                        [(state,)] = conn.execute(Q["state_at"], (seq,)).fetchall()
                        yield decode_job(state)

                try:
                    return earliest_ready_since(ready())
                finally:
                    keys.close()
            except sqlite3.Error as error:
                raise translate(error) from error

    async def jobs_ahead(self, job: JobInfo, now: datetime) -> int:
        """How many ready jobs of the job's tenant and queue would be leased before it."""
        await self._current()
        [(count,)] = await self._rows(
            "jobs_ahead",
            {
                "tenant": job.tenant_id,
                "queue": job.message.queue,
                "now": to_micros(now),
                "job_id": job.job_id,
            },
        )
        return int(count)

    async def dependents(self, job: JobInfo, limit: int) -> list[JobInfo]:
        """The first `limit` jobs whose `after` names `job`, oldest first."""
        await self._current()
        rows = await self._rows(
            "dependents", {"tenant": job.tenant_id, "parent": job.job_id, "limit": limit}
        )
        return [decode_job(state) for (state,) in rows]
