"""The in-memory backend: the same log and projections as SQLite, kept in dicts and heaps.

For tests and for embedding where durability is not wanted. Events are still stored as
encoded bytes, so the memory backend exercises the same codec as the persistent ones.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from dogqueue.backend.base import EngineBackend, T
from dogqueue.backend.browse import ProjectionBrowser
from dogqueue.backend.kit.strictview import StrictView
from dogqueue.backend.kit.workingset import UndoableWorkingSet
from dogqueue.backend.memory_log import MemoryLogReader
from dogqueue.clock import Clock
from dogqueue.core.codec import decode_event, encode_event
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey, rebuild
from dogqueue.engine import Unit
from dogqueue.log.chain import GENESIS, ChainHeads
from dogqueue.log.reader import in_tenant_positions


class StoredEvent(NamedTuple):
    """One log record: identity columns plus the event's canonical bytes."""

    seq: int
    tenant_id: str
    job_id: str
    version: int
    type: str
    data: bytes
    #: Chain hash (dogqueue.log.chain) linking it to its tenant's previous event.
    hash: bytes = GENESIS
    #: Position among its tenant's events, from 1.
    tpos: int = 0


class MemoryStore(UndoableWorkingSet):
    """The log, its chain heads and the working set of every job, with an undo log so
    that a unit of work is all or nothing."""

    def __init__(self, audit_key: bytes | None = None) -> None:
        super().__init__()
        self.audit_key = audit_key
        self.log: list[StoredEvent] = []
        self.versions: set[tuple[str, str, int]] = set()
        self.histories: dict[JobKey, list[int]] = defaultdict(list)
        #: Each tenant's chain head: (seq, hash, tenant position) of its latest event.
        self.chain = ChainHeads(audit_key)
        self.chain_heads = self.chain.heads

    # -- the log -----------------------------------------------------------------------

    def append(self, event: AnyEvent) -> AnyEvent:
        identity = (event.tenant_id, event.job_id, event.version)
        if identity in self.versions:  # the unique (tenant, job, version) constraint
            raise StorageError(f"version conflict on {identity}")
        seq = len(self.log) + 1
        data = encode_event(event)
        previous_head = self.chain_heads.get(event.tenant_id)
        digest, tpos = self.chain.link(event.tenant_id, seq, data)
        self.log.append(
            StoredEvent(
                seq, event.tenant_id, event.job_id, event.version, event.type, data, digest, tpos
            )
        )
        self.versions.add(identity)
        history = self.histories[(event.tenant_id, event.job_id)]
        history.append(seq)

        def undo() -> None:
            self.log.pop()
            self.versions.discard(identity)
            history.pop()
            if previous_head is None:
                self.chain_heads.pop(event.tenant_id, None)
            else:
                self.chain_heads[event.tenant_id] = previous_head

        self._remember(undo)
        return decode_event(self.log[-1].data, seq)

    def events(self, seqs: list[int] | range) -> list[AnyEvent]:
        return [decode_event(self.log[seq - 1].data, seq) for seq in seqs]

    def tenant_view(self, job: JobInfo) -> JobInfo:
        """The job with its enqueued event's tenant position as `enqueue_seq`."""
        return in_tenant_positions(job, self.log[job.enqueue_seq - 1].tpos)


class MemoryBackend(EngineBackend):
    """A backend that keeps its log and projections in this process's memory."""

    def __init__(
        self,
        *,
        config: QueueConfig | None = None,
        clock: Clock | None = None,
        draw: Callable[[], float] | None = None,
        audit_key: bytes | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        # `new_id` makes job ids (default: time-ordered UUIDv7s); a seeded run passes
        # its own, like `draw`, to replay the same ids.
        super().__init__(config=config, clock=clock, draw=draw, audit_key=audit_key, new_id=new_id)
        self._store = MemoryStore(self.audit_key)
        #: Workers' presence records: worker id -> (last seen, stored record).
        self._workers: dict[str, tuple[datetime, bytes]] = {}

    def share_store(self, other: MemoryBackend) -> None:
        """Read and write `other`'s log and jobs from now on, as a second handle on the
        same storage would (for tests of reopening, and of two handles side by side)."""
        if other.audit_key != self.audit_key:
            raise InvalidInput("audit_key", "must be the same as the other backend's")
        self._store = other._store

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    def _submit(self, unit: Unit[T]) -> asyncio.Future[T]:
        # Units of work never await, so each runs to its end here, in call order; each
        # through a view that refuses what it did not declare, so that a declaration
        # that falls short fails here, on the fastest backend.
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        store = self._store
        store.begin()
        try:
            result = unit.run(StrictView(store, unit.reads), self.now())
        except BaseException as error:
            store.rollback()
            future.set_exception(error)
        else:
            store.commit()
            future.set_result(result)
        return future

    async def _read_job(self, tenant_id: str, job_id: str) -> JobInfo | None:
        job = self._store.jobs.get((tenant_id, job_id))
        return None if job is None else self._store.tenant_view(job)

    async def _latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        return self._store.latest_key(tenant_id, prefix)

    async def _read_history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        log = self._store.log
        seqs = self._store.histories.get((tenant_id, job_id), [])
        return [decode_event(log[seq - 1].data, log[seq - 1].tpos) for seq in seqs]

    async def _ready_tenants(self, queues: tuple[str, ...], now: datetime) -> list[str]:
        tenants = sorted(
            {tenant for tenant, queue in self._store.scheduled}
            | {tenant for tenant, queue in self._store.ready}
        )
        return [t for t in tenants if self._store.next_ready(t, queues, now) is not None]

    async def _next_run_at(
        self, queues: tuple[str, ...], tenant_ids: tuple[str, ...] | None
    ) -> datetime | None:
        return self._store.next_run_at(queues, tenant_ids)

    async def _read_events(self, after_seq: int, limit: int | None) -> list[AnyEvent]:
        end = (
            len(self._store.log) if limit is None else min(len(self._store.log), after_seq + limit)
        )
        return self._store.events(range(after_seq + 1, end + 1))

    async def _projected_jobs(self) -> dict[JobKey, JobInfo]:
        return dict(self._store.jobs)

    async def _rebuild_projections(self) -> int:
        events = self._store.events(range(1, len(self._store.log) + 1))
        self._store.reindex(rebuild(events))
        return len(events)

    async def _announce_worker(
        self, worker_id: str, last_seen: datetime, data: bytes, forget_before: datetime
    ) -> None:
        self._workers[worker_id] = (last_seen, data)
        for other, (seen, _) in list(self._workers.items()):
            if seen < forget_before:
                del self._workers[other]

    async def _read_workers(self, seen_since: datetime) -> list[bytes]:
        return [data for seen, data in self._workers.values() if seen >= seen_since]

    def log_reader(self, *, wait_for_own_writes: bool = True) -> MemoryLogReader:
        """This backend's log and chain, read in place (a read never waits)."""
        return MemoryLogReader(lambda: self._store)

    def browser(self) -> ProjectionBrowser:
        """The projection, listed and counted in place (it is all in memory)."""
        return ProjectionBrowser(self)
