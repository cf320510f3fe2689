"""The in-memory backend: the same log and projections as SQLite, kept in dicts and heaps.

For tests and for embedding where durability is not wanted. Events are still stored as
encoded bytes, so the memory backend exercises the same codec as the persistent ones.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, TypeVar

from dogqueue.backend.base import EngineBackend, T, Work
from dogqueue.backend.memory_log import MemoryLogReader
from dogqueue.clock import Clock
from dogqueue.core.codec import decode_event, encode_event
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import KEY_NAMESPACE
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.order import DequeueKey, dequeue_key
from dogqueue.core.projection import JobKey, rebuild
from dogqueue.core.status import JobStatus
from dogqueue.engine import Reads
from dogqueue.log.chain import GENESIS, chain_hash
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


class _ReadyEntry(NamedTuple):
    key: DequeueKey
    job_id: str
    version: int


class _TimedEntry(NamedTuple):
    when: datetime
    tenant_id: str
    job_id: str
    version: int


_E = TypeVar("_E", "_ReadyEntry", "_TimedEntry")


class MemoryStore:
    """The log and the projection with its dequeue indexes. Index entries are dropped
    lazily: an entry counts only while its job still has the entry's version."""

    def __init__(self, audit_key: bytes | None = None) -> None:
        self.audit_key = audit_key
        self.log: list[StoredEvent] = []
        self.versions: set[tuple[str, str, int]] = set()
        self.jobs: dict[JobKey, JobInfo] = {}
        self.histories: dict[JobKey, list[int]] = defaultdict(list)
        self.keys: dict[tuple[str, str], str] = {}
        #: Each tenant's idempotency keys in the cron namespace, sorted (for latest_key).
        self.schedule_keys: dict[str, list[str]] = defaultdict(list)
        #: Each tenant's chain head: (seq, hash, tenant position) of its latest event.
        self.chain_heads: dict[str, tuple[int, bytes, int]] = {}
        # (tenant, queue) -> jobs waiting for their run_at / jobs due, in dequeue order
        self.scheduled: dict[tuple[str, str], list[_TimedEntry]] = defaultdict(list)
        self.ready: dict[tuple[str, str], list[_ReadyEntry]] = defaultdict(list)
        self.leases: dict[str, list[_TimedEntry]] = defaultdict(list)
        #: Each job's dependents (the jobs whose `after` names it), oldest first.
        self.children: dict[JobKey, list[str]] = defaultdict(list)
        #: Undo steps of the open transaction, newest last (None: none open).
        self._undo: list[Callable[[], None]] | None = None

    # -- all or nothing ----------------------------------------------------------------

    def begin(self) -> None:
        """Start recording changes so that `rollback` can take them back."""
        self._undo = []

    def commit(self) -> None:
        """Keep every change since `begin`."""
        self._undo = None

    def rollback(self) -> None:
        """Take back every change since `begin`, newest first."""
        undo, self._undo = self._undo or [], None
        for step in reversed(undo):
            step()

    def _remember(self, step: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(step)

    def _pop(self, heap: list[_E]) -> _E:
        """Pop an index entry; a rollback pushes it back."""
        entry = heapq.heappop(heap)
        self._remember(lambda: heapq.heappush(heap, entry))
        return entry

    def _current(self, tenant_id: str, job_id: str, version: int) -> JobInfo | None:
        job = self.jobs.get((tenant_id, job_id))
        return job if job is not None and job.version == version else None

    # -- Transaction -------------------------------------------------------------------

    def load(self, tenant_id: str, job_id: str) -> JobInfo | None:
        return self.jobs.get((tenant_id, job_id))

    def job_for_key(self, tenant_id: str, idempotency_key: str) -> str | None:
        return self.keys.get((tenant_id, idempotency_key))

    def latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        keys = self.schedule_keys.get(tenant_id)
        if not keys:
            return None
        # The greatest key below the first string after every key that starts with prefix.
        index = bisect.bisect_left(keys, prefix + "\U0010ffff")
        if index == 0 or not keys[index - 1].startswith(prefix):
            return None
        key = keys[index - 1]
        return key, self.keys[(tenant_id, key)]

    def _add_key(self, tenant_id: str, key: str, job_id: str) -> None:
        self.keys[(tenant_id, key)] = job_id
        if key.startswith(KEY_NAMESPACE):
            bisect.insort(self.schedule_keys[tenant_id], key)

    def _drop_key(self, tenant_id: str, key: str) -> None:
        self.keys.pop((tenant_id, key), None)
        if key.startswith(KEY_NAMESPACE):
            keys = self.schedule_keys[tenant_id]
            index = bisect.bisect_left(keys, key)
            if index < len(keys) and keys[index] == key:
                del keys[index]

    def _promote(self, tenant_id: str, queue: str, now: datetime) -> None:
        scheduled = self.scheduled.get((tenant_id, queue))
        if not scheduled:
            return
        ready = self.ready[(tenant_id, queue)]
        while scheduled and scheduled[0].when <= now:
            entry = self._pop(scheduled)
            job = self._current(tenant_id, entry.job_id, entry.version)
            if job is not None and job.status is JobStatus.ENQUEUED:
                heapq.heappush(
                    ready,
                    _ReadyEntry(dequeue_key(job), job.job_id, job.version),
                )

    def _head(self, tenant_id: str, queue: str, now: datetime) -> _ReadyEntry | None:
        self._promote(tenant_id, queue, now)
        ready = self.ready.get((tenant_id, queue))
        while ready:
            entry = ready[0]
            job = self._current(tenant_id, entry.job_id, entry.version)
            if job is not None and job.status is JobStatus.ENQUEUED:
                return entry
            self._pop(ready)
        return None

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        best: _ReadyEntry | None = None
        for queue in queues:
            head = self._head(tenant_id, queue, now)
            if head is not None and (best is None or head < best):
                best = head
        return None if best is None else self.jobs[(tenant_id, best.job_id)]

    def dependents(self, tenant_id: str, job_id: str) -> list[str]:
        return list(self.children.get((tenant_id, job_id), ()))

    def _adopt(self, child: JobInfo) -> None:
        """Record a new job as a dependent of each of its parents."""
        for parent in child.message.after:
            siblings = self.children[(child.tenant_id, parent)]
            siblings.append(child.job_id)
            self._remember(siblings.pop)  # type: ignore[arg-type]  # its result is unused

    def expired_leases(self, tenant_id: str | None, now: datetime) -> list[JobInfo]:
        tenants = [tenant_id] if tenant_id is not None else list(self.leases)
        expired: list[JobInfo] = []
        for tenant in tenants:
            heap = self.leases.get(tenant)
            while heap and heap[0].when <= now:
                entry = self._pop(heap)
                job = self._current(tenant, entry.job_id, entry.version)
                if job is not None and job.status is JobStatus.LEASED:
                    expired.append(job)
        expired.sort(key=lambda job: (job.lease_expires_at, job.enqueue_seq))
        return expired

    def append(self, event: AnyEvent) -> AnyEvent:
        identity = (event.tenant_id, event.job_id, event.version)
        if identity in self.versions:  # the unique (tenant, job, version) constraint
            raise StorageError(f"version conflict on {identity}")
        seq = len(self.log) + 1
        data = encode_event(event)
        previous_head = self.chain_heads.get(event.tenant_id)
        _, previous, tpos = self.chain_heads.get(event.tenant_id, (0, GENESIS, 0))
        digest = chain_hash(previous, seq, data, self.audit_key)
        self.chain_heads[event.tenant_id] = (seq, digest, tpos + 1)
        self.log.append(
            StoredEvent(
                seq,
                event.tenant_id,
                event.job_id,
                event.version,
                event.type,
                data,
                digest,
                tpos + 1,
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

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        key = (after.tenant_id, after.job_id)
        previous = self.jobs.get(key)
        self.jobs[key] = after
        new_key = None
        if before is None and after.message.idempotency_key is not None:
            new_key = after.message.idempotency_key
            self._add_key(after.tenant_id, new_key, after.job_id)

        def undo() -> None:
            if previous is None:
                self.jobs.pop(key, None)
            else:
                self.jobs[key] = previous
                self._index(previous)  # its index entries may have been popped
            if new_key is not None:
                self._drop_key(after.tenant_id, new_key)

        self._remember(undo)
        if before is None:
            self._adopt(after)
        self._index(after)

    def _index(self, job: JobInfo) -> None:
        if job.status is JobStatus.ENQUEUED:
            heapq.heappush(
                self.scheduled[(job.tenant_id, job.message.queue)],
                _TimedEntry(job.run_at, job.tenant_id, job.job_id, job.version),
            )
        elif job.status is JobStatus.LEASED:
            assert job.lease_expires_at is not None
            heapq.heappush(
                self.leases[job.tenant_id],
                _TimedEntry(job.lease_expires_at, job.tenant_id, job.job_id, job.version),
            )

    def reindex(self, jobs: dict[JobKey, JobInfo]) -> None:
        """Replace the projection and its indexes with `jobs`."""
        self.jobs = dict(jobs)
        self.keys = {}
        self.schedule_keys.clear()
        for job in jobs.values():
            if job.message.idempotency_key is not None:
                self._add_key(job.tenant_id, job.message.idempotency_key, job.job_id)
        self.scheduled.clear()
        self.ready.clear()
        self.leases.clear()
        self.children.clear()
        for job in sorted(jobs.values(), key=lambda j: j.enqueue_seq):
            self._index(job)
            self._adopt(job)

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

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    def _submit(self, work: Work[T], reads: Reads) -> asyncio.Future[T]:
        # Units of work never await, so each runs to its end here, in call order.
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        store = self._store
        store.begin()
        try:
            result = work(store, self.now())
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
        wanted = None if tenant_ids is None else set(tenant_ids)
        times = [
            job.run_at
            for job in self._store.jobs.values()
            if job.status is JobStatus.ENQUEUED
            and job.message.queue in queues
            and (wanted is None or job.tenant_id in wanted)
        ]
        return min(times, default=None)

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

    def log_reader(self, *, wait_for_own_writes: bool = True) -> MemoryLogReader:
        """This backend's log and chain, read in place (a read never waits)."""
        return MemoryLogReader(lambda: self._store)
