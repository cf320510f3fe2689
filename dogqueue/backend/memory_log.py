"""The memory backend's log, read in place: its stored bytes, hashes and chain heads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, NamedTuple

from dogqueue.core.codec import decode_event, encode_job
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.log.reader import (
    LogPos,
    LogRecord,
    ProjectionRow,
    TenantPos,
    in_tenant_positions,
    projected_columns,
)

if TYPE_CHECKING:
    from dogqueue.backend.memory import MemoryStore, StoredEvent


class _Frozen(NamedTuple):
    length: int
    jobs: dict[JobKey, JobInfo]
    heads: dict[str, tuple[int, bytes, int]]
    children: dict[JobKey, list[str]]


class MemoryLogReader:
    """A memory backend's log. Reads see the store as it is at each call, or as it was
    when `snapshot()` was entered."""

    def __init__(self, store: Callable[[], MemoryStore]) -> None:
        self._store = store
        self._frozen: _Frozen | None = None

    def _view(self) -> _Frozen:
        if self._frozen is not None:
            return self._frozen
        store = self._store()
        return _Frozen(len(store.log), store.jobs, store.chain_heads, store.children)

    def _log(self) -> list[StoredEvent]:
        return self._store().log[: self._view().length]

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Every read inside sees the log as it was on entry."""
        store = self._store()
        outer = self._frozen
        if outer is None:
            self._frozen = _Frozen(
                len(store.log),
                dict(store.jobs),
                dict(store.chain_heads),
                {key: list(children) for key, children in store.children.items()},
            )
        try:
            yield
        finally:
            self._frozen = outer

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        """Stored events with position > `after`, in position order."""
        end = None if limit is None else max(after, 0) + limit
        return [
            LogRecord(
                LogPos(e.seq),
                e.tenant_id,
                e.job_id,
                e.version,
                e.type,
                e.data,
                e.hash,
                TenantPos(e.tpos),
            )
            for e in self._log()[max(after, 0) : end]
        ]

    async def unsealed(self) -> list[LogRecord]:
        """Always empty: every event has its position once appended."""
        return []

    async def last_position(self) -> int:
        """The highest position given so far."""
        return self._view().length

    async def events(self, *, after: int = 0, limit: int | None = None) -> list[AnyEvent]:
        """Decoded events with position > `after`; `seq` is the log position."""
        return [decode_event(r.data, r.pos) for r in await self.records(after=after, limit=limit)]

    async def tenant_events(self, tenant_id: str) -> list[AnyEvent]:
        """The tenant's events in log order, `seq` = tenant position."""
        return [decode_event(e.data, e.tpos) for e in self._log() if e.tenant_id == tenant_id]

    async def history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        """The job's events in log order, `seq` = tenant position."""
        log = self._log()
        seqs = self._store().histories.get((tenant_id, job_id), [])
        return [decode_event(log[s - 1].data, log[s - 1].tpos) for s in seqs if s <= len(log)]

    async def status_counts(self) -> dict[tuple[str, str], int] | None:
        return None  # counted from the jobs themselves

    async def dependencies(self) -> list[tuple[str, str, str]]:
        """The dependency index: (tenant, parent, child)."""
        return [
            (tenant, parent, child)
            for (tenant, parent), children in sorted(self._view().children.items())
            for child in children
        ]

    async def jobs(self, tenant_id: str | None = None) -> list[JobInfo]:
        """The projection in enqueue order (one tenant's in its tenant positions)."""
        ordered = sorted(self._view().jobs.values(), key=lambda job: job.enqueue_seq)
        if tenant_id is None:
            return ordered
        log = self._log()
        return [
            in_tenant_positions(job, log[job.enqueue_seq - 1].tpos)
            for job in ordered
            if job.tenant_id == tenant_id
        ]

    async def projection_rows(self) -> list[ProjectionRow]:
        """The projection as rows: each job's state, and the key index's entry for it."""
        keys = {(tenant, job): key for (tenant, key), job in self._store().keys.items()}
        rows = []
        for job in await self.jobs():
            columns = projected_columns(job)
            columns["idempotency_key"] = keys.get((job.tenant_id, job.job_id))
            rows.append(
                ProjectionRow(**columns, enqueue_seq=job.enqueue_seq, state=encode_job(job))
            )
        return rows

    async def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        """Each tenant's chain head: (position, hash)."""
        return {tenant: (seq, digest) for tenant, (seq, digest, _) in self._view().heads.items()}

    async def close(self) -> None:
        """Nothing to release."""
