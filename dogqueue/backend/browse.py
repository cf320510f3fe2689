"""The read model a dashboard lists jobs with: a paged, filtered job list and per-tenant
counts, fast on large logs. Every backend returns one from `Backend.browser()` (SQLite
and PostgreSQL with indexed SQL of their own; memory with the contract-only
`ProjectionBrowser`). Readiness and dequeue order follow `dogqueue.core.order`."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar, runtime_checkable

from dogqueue.core.errors import InvalidInput
from dogqueue.core.job import JobInfo
from dogqueue.core.order import earliest_ready_since, is_ready, jobs_ahead
from dogqueue.core.projection import JobKey
from dogqueue.core.status import JobStatus

C = TypeVar("C")

#: The most jobs one page may hold.
MAX_PAGE = 500


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a list shows. Empty fields match everything.

    `created_after`/`created_before` compare with the creation time carried in the job id
    (a UUIDv7); `search` matches a prefix of the job id or of the idempotency key."""

    statuses: frozenset[JobStatus] = frozenset()
    job_type: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    search: str | None = None

    def __post_init__(self) -> None:
        if not all(isinstance(status, JobStatus) for status in self.statuses):
            raise InvalidInput("statuses", "must hold JobStatus values")
        for name in ("created_after", "created_before"):
            moment = getattr(self, name)
            if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
                raise InvalidInput(name, "must be an aware datetime")

    @property
    def id_range(self) -> tuple[str | None, str | None]:
        """The job ids (inclusive low, exclusive high) created in the time range."""
        return _id_at(self.created_after), _id_at(self.created_before)

    def matches(self, job: JobInfo) -> bool:
        """Whether `job` passes every filter (the reference the SQL implementations follow)."""
        low, high = self.id_range
        key = job.message.idempotency_key
        return (
            (not self.statuses or job.status in self.statuses)
            and (self.job_type is None or job.message.job_type == self.job_type)
            and (self.queue is None or job.message.queue == self.queue)
            and (low is None or job.job_id >= low)
            and (high is None or job.job_id < high)
            and (
                not self.search
                or job.job_id.startswith(self.search)
                or (key is not None and key.startswith(self.search))
            )
        )


@dataclass(frozen=True)
class JobPage:
    """One page of a job list, newest first; `next_cursor` asks for the next page."""

    jobs: list[JobInfo]
    next_cursor: str | None


@dataclass(frozen=True)
class TenantSummary:
    """One tenant's jobs by status, with the ready/scheduled split of ENQUEUED ones."""

    tenant_id: str
    counts: dict[JobStatus, int] = field(default_factory=dict)
    #: ENQUEUED and due now.
    ready: int = 0
    #: ENQUEUED and due later.
    scheduled: int = 0
    #: The earliest moment a ready job became ready (`dogqueue.core.order.ready_since`:
    #: its run_at, or a later release or parent's end): how long the oldest has waited.
    oldest_ready_at: datetime | None = None

    @property
    def leased(self) -> int:
        """Jobs held by workers."""
        return self.counts.get(JobStatus.LEASED, 0)

    @property
    def failed(self) -> int:
        """Dead letters."""
        return self.counts.get(JobStatus.FAILED, 0)


@runtime_checkable
class JobBrowser(Protocol):
    """Reads for listing jobs; `tenant_id=None` means every tenant (operators only)."""

    async def list_jobs(
        self, tenant_id: str | None, filters: JobFilter, cursor: str | None, limit: int
    ) -> JobPage:
        """Jobs matching `filters`, newest first (by enqueue order), after `cursor`."""
        ...

    async def tenant_overview(self, now: datetime) -> list[TenantSummary]:
        """Every tenant that has jobs, by tenant id."""
        ...

    async def jobs_ahead(self, job: JobInfo, now: datetime) -> int:
        """How many ready jobs of the job's tenant and queue would be leased before it
        (`job` as `Backend.get_job` returns it)."""
        ...

    async def dependents(self, job: JobInfo, limit: int) -> list[JobInfo]:
        """The first `limit` jobs whose `after` names `job`, oldest first."""
        ...


class ProjectedJobs(Protocol):
    """What a ProjectionBrowser reads: `Backend.projected_jobs`."""

    async def projected_jobs(self) -> dict[JobKey, JobInfo]:
        """Every job's state, keyed by (tenant_id, job_id), in log positions."""
        ...


class ProjectionBrowser:
    """A JobBrowser over any Backend's `projected_jobs()`: reads the whole projection
    each call, so it suits small queues and the memory backend."""

    def __init__(self, backend: ProjectedJobs) -> None:
        self.backend = backend

    async def list_jobs(
        self, tenant_id: str | None, filters: JobFilter, cursor: str | None, limit: int
    ) -> JobPage:
        """Jobs matching `filters`, newest first (by enqueue order), after `cursor`."""
        check_page(limit)
        before = parse_cursor(cursor)
        jobs = sorted(
            (
                job
                for job in (await self.backend.projected_jobs()).values()
                if (tenant_id is None or job.tenant_id == tenant_id)
                and (before is None or job.enqueue_seq < before)
                and filters.matches(job)
            ),
            key=lambda job: job.enqueue_seq,
            reverse=True,
        )
        return page_of(jobs[: limit + 1], limit)

    async def tenant_overview(self, now: datetime) -> list[TenantSummary]:
        """Every tenant that has jobs, by tenant id."""
        return summarize((await self.backend.projected_jobs()).values(), now)

    async def jobs_ahead(self, job: JobInfo, now: datetime) -> int:
        """How many ready jobs of the job's tenant and queue would be leased before it."""
        jobs = await self.backend.projected_jobs()
        # The projection's positions are log positions; `job` may carry its tenant's.
        mine = jobs.get((job.tenant_id, job.job_id), job)
        return jobs_ahead(mine, jobs.values(), now)

    async def dependents(self, job: JobInfo, limit: int) -> list[JobInfo]:
        """The first `limit` jobs whose `after` names `job`, oldest first."""
        found = sorted(
            (
                other
                for other in (await self.backend.projected_jobs()).values()
                if other.tenant_id == job.tenant_id and job.job_id in other.message.after
            ),
            key=lambda other: other.enqueue_seq,
        )
        return found[:limit]


async def all_matching(
    browser: JobBrowser, tenant_id: str | None, filters: JobFilter, cap: int | None = None
) -> list[JobInfo]:
    """Every job matching `filters` (at most `cap`), newest first, page by page."""
    jobs: list[JobInfo] = []
    cursor = None
    while cap is None or len(jobs) < cap:
        page = await browser.list_jobs(tenant_id, filters, cursor, MAX_PAGE)
        jobs += page.jobs
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return jobs if cap is None else jobs[:cap]


def summarize(jobs: Iterable[JobInfo], now: datetime) -> list[TenantSummary]:
    """Tenant summaries of `jobs`, by tenant id."""
    counts: dict[str, Counter[JobStatus]] = {}
    ready: dict[str, list[JobInfo]] = {}
    for job in jobs:
        counts.setdefault(job.tenant_id, Counter())[job.status] += 1
        if is_ready(job, now):
            ready.setdefault(job.tenant_id, []).append(job)
    return summaries(
        counts,
        Counter({tenant: len(due) for tenant, due in ready.items()}),
        {
            tenant: since
            for tenant, due in ready.items()
            if (since := earliest_ready_since(sorted(due, key=lambda job: job.run_at)))
        },
    )


def summaries(
    counts: dict[str, Counter[JobStatus]], ready: Counter[str], oldest: dict[str, datetime]
) -> list[TenantSummary]:
    """Tenant summaries from each tenant's jobs by status, ready jobs and the earliest
    moment one of them became ready, by tenant id."""
    return [
        TenantSummary(
            tenant_id=tenant,
            counts=dict(counts[tenant]),
            ready=ready[tenant],
            scheduled=counts[tenant][JobStatus.ENQUEUED] - ready[tenant],
            oldest_ready_at=oldest.get(tenant),
        )
        for tenant in sorted(counts)
    ]


#: Ready jobs read by the first step while looking for the one that has waited longest;
#: each further step reads twice as many (a step may sort the tenant's ready jobs).
READY_CHUNK = 64


async def earliest_ready_paged(
    ready_after: Callable[[C | None, int], Awaitable[list[tuple[C, JobInfo]]]],
) -> datetime | None:
    """The earliest `ready_since` of a tenant's ready jobs, read in `run_at` order a
    chunk at a time: `ready_after(cursor, limit)` gives up to `limit` of them after
    `cursor` (None: from the first), each with the cursor that follows it. Usually one
    chunk: only jobs released (or freed by their parents) after their run_at make the
    walk go on, over chunks that double."""
    best: datetime | None = None
    cursor: C | None = None
    limit = READY_CHUNK
    while rows := await ready_after(cursor, limit):
        best = earliest_ready_since((job for _, job in rows), best)
        if len(rows) < limit or (best is not None and rows[-1][1].run_at >= best):
            break
        cursor, limit = rows[-1][0], limit * 2
    return best


def check_page(limit: int) -> None:
    """Refuse a page size outside 1..MAX_PAGE."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be an int from 1 to {MAX_PAGE}")


def parse_cursor(cursor: str | None) -> int | None:
    """The enqueue position a cursor stands for."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isdecimal() or len(cursor) > 19:
        raise InvalidInput("cursor", "is not a cursor this dashboard made")
    return int(cursor)


def page_of(jobs: list[JobInfo], limit: int) -> JobPage:
    """A page of the first `limit` of `jobs` (newest first; one extra means more follow)."""
    shown = jobs[:limit]
    more = len(jobs) > limit
    return JobPage(shown, str(shown[-1].enqueue_seq) if more and shown else None)


def _id_at(moment: datetime | None) -> str | None:
    """The smallest UUIDv7 made at `moment`."""
    if moment is None:
        return None
    millis = int(moment.astimezone(UTC).timestamp() * 1000)
    millis = min(max(millis, 0), 0xFFFF_FFFF_FFFF)
    return str(uuid.UUID(int=millis << 80))
