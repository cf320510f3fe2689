"""The in-memory working set: job rows (the projection) with the indexes a unit of work
reads through (ready heaps per queue, lease expiries, idempotency keys, dependents).

The memory backend keeps its whole projection in one; a batching backend (PostgreSQL,
Redis next) seeds one per batch with the rows the batch declared, runs the batch's units
on it, and flushes what they saved. Subclasses add `append` (the log); the undoable one
keeps what a rollback needs. Index entries are dropped lazily: an entry counts only
while its job still has the entry's version. A job due when it is saved goes straight
to its ready heap; others wait in a scheduled heap until their `run_at`.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from dogqueue.core.cron import KEY_NAMESPACE
from dogqueue.core.job import JobInfo
from dogqueue.core.order import dequeue_key
from dogqueue.core.projection import JobKey
from dogqueue.core.status import JobStatus


# Index entries are ordered like tuples of their fields, compared in C, and untracked by
# the cycle collector (they hold no containers): a working set holds one or two per job,
# which as tuples would be traversed by every full collection.
class _ReadyEntry(msgspec.Struct, order=True, frozen=True, gc=False):
    #: The dequeue key (`dogqueue.core.order.dequeue_key`), field by field.
    priority: int
    run_at: datetime
    enqueue_seq: int
    job_id: str
    version: int


class _TimedEntry(msgspec.Struct, order=True, frozen=True, gc=False):
    when: datetime
    tenant_id: str
    job_id: str
    version: int


_E = TypeVar("_E", _ReadyEntry, _TimedEntry)
_Group = TypeVar("_Group")
_ENQUEUED, _LEASED = JobStatus.ENQUEUED, JobStatus.LEASED


class WorkingSet:
    """Job rows and their dequeue, lease, key and dependents indexes; the read half of
    the engine's Transaction, plus `save`."""

    def __init__(self) -> None:
        self.jobs: dict[JobKey, JobInfo] = {}
        self.keys: dict[tuple[str, str], str] = {}
        #: Each tenant's idempotency keys in the cron namespace, sorted (for latest_key).
        self.schedule_keys: dict[str, list[str]] = defaultdict(list)
        # (tenant, queue) -> jobs waiting for their run_at / jobs due, in dequeue order
        self.scheduled: dict[tuple[str, str], list[_TimedEntry]] = defaultdict(list)
        self.ready: dict[tuple[str, str], list[_ReadyEntry]] = defaultdict(list)
        self.leases: dict[str, list[_TimedEntry]] = defaultdict(list)
        #: Each job's dependents (the jobs whose `after` names it), oldest first.
        self.children: dict[JobKey, list[str]] = defaultdict(list)

    def _remember(self, step: Callable[[], None]) -> None:
        """Keep an undo step of a change (a subclass with rollback records it)."""

    def _pop(self, heap: list[_E]) -> _E:
        """Pop an index entry (a subclass with rollback pushes it back)."""
        return heapq.heappop(heap)

    def _current(self, tenant_id: str, job_id: str, version: int) -> JobInfo | None:
        job = self.jobs.get((tenant_id, job_id))
        return job if job is not None and job.version == version else None

    # -- the read half of Transaction ---------------------------------------------------

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
                    _ReadyEntry(*dequeue_key(job), job.job_id, job.version),
                )

    def _head(self, tenant_id: str, queue: str, now: datetime) -> _ReadyEntry | None:
        self._promote(tenant_id, queue, now)
        ready = self.ready.get((tenant_id, queue))
        while ready:
            entry = ready[0]
            job = self._current(tenant_id, entry.job_id, entry.version)
            if job is not None and job.status is JobStatus.ENQUEUED:
                if job.run_at <= now:
                    return entry
                # Not due at `now` (a clock set back since it was indexed): it waits.
                self._schedule(job)
            self._pop(ready)
        return None

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        best: _ReadyEntry | None = None
        for queue in queues:
            head = self._head(tenant_id, queue, now)
            if head is not None and (best is None or head < best):
                best = head
        return None if best is None else self.jobs[(tenant_id, best.job_id)]

    def next_run_at(
        self, queues: tuple[str, ...], tenant_ids: tuple[str, ...] | None
    ) -> datetime | None:
        """The earliest `run_at` of an enqueued job on `queues` (of `tenant_ids`), read
        through the dequeue indexes: every enqueued job has a current entry in one. Stale
        entries (of a version no rollback returns to) at the heads are dropped on the way."""
        wanted = None if tenant_ids is None else set(tenant_ids)
        run_ats = [
            # A timed heap is in run_at order: its (current) head is its earliest.
            *(entries[0].when for _, entries in self._served(self.scheduled, queues, wanted)),
            *(self._earliest_ready(t, e) for t, e in self._served(self.ready, queues, wanted)),
        ]
        return min(run_ats, default=None)

    def _served(
        self,
        index: dict[tuple[str, str], list[_E]],
        queues: tuple[str, ...],
        wanted: set[str] | None,
    ) -> list[tuple[str, list[_E]]]:
        """The heaps of `index` on `queues` (of the `wanted` tenants), with their tenant,
        stale entries dropped from their heads."""
        served = []
        for (tenant_id, queue), entries in index.items():
            if queue not in queues or (wanted is not None and tenant_id not in wanted):
                continue
            while entries and not self._enqueued(tenant_id, entries[0]):
                heapq.heappop(entries)
            if entries:
                served.append((tenant_id, entries))
        return served

    def _earliest_ready(self, tenant_id: str, entries: list[_ReadyEntry]) -> datetime:
        # A ready heap goes by priority first: look up only the entries that are earlier.
        earliest = entries[0].run_at
        for entry in entries:
            run_at = entry.run_at
            if run_at < earliest and self._enqueued(tenant_id, entry):
                earliest = run_at
        return earliest

    def _enqueued(self, tenant_id: str, entry: _ReadyEntry | _TimedEntry) -> bool:
        job = self._current(tenant_id, entry.job_id, entry.version)
        return job is not None and job.status is JobStatus.ENQUEUED

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

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        self.jobs[(after.tenant_id, after.job_id)] = after
        if before is None:
            key = after.message.idempotency_key
            if key is not None:
                self._add_key(after.tenant_id, key, after.job_id)
                self._remember(lambda: self._drop_key(after.tenant_id, key))
            if after.message.after:  # most jobs have no parents
                self._adopt(after)
        self._index(after)

    def _index(self, job: JobInfo) -> None:
        status = job.status
        if status is _ENQUEUED:
            if job.run_at <= job.updated_at:  # due when saved: the clock only goes on
                heapq.heappush(
                    self.ready[(job.tenant_id, job.message.queue)],
                    _ReadyEntry(*dequeue_key(job), job.job_id, job.version),
                )
            else:
                self._schedule(job)
        elif status is _LEASED:
            assert job.lease_expires_at is not None
            heapq.heappush(
                self.leases[job.tenant_id],
                _TimedEntry(job.lease_expires_at, job.tenant_id, job.job_id, job.version),
            )

    def _schedule(self, job: JobInfo) -> None:
        """Index an ENQUEUED job to wait for its `run_at`."""
        heapq.heappush(
            self.scheduled[(job.tenant_id, job.message.queue)],
            _TimedEntry(job.run_at, job.tenant_id, job.job_id, job.version),
        )

    def keep_held_entries(self) -> None:
        """Drop the index entries of jobs no longer held (after a subclass let go of
        jobs that another store, such as a checkpoint, lists)."""
        _keep_held(self.scheduled, self.jobs, lambda group: group[0])
        _keep_held(self.ready, self.jobs, lambda group: group[0])
        _keep_held(self.leases, self.jobs, lambda tenant_id: tenant_id)

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


class UndoableWorkingSet(WorkingSet):
    """A working set whose changes between `begin` and `commit` can be taken back, so
    that a unit of work on it is all or nothing. What a rollback needs is kept as data
    (each saved job's row before its first save, each index entry popped), with undo
    steps only for the rarer changes (keys, dependents, a subclass's log). Index entries
    pushed since `begin` stay: they belong to versions the rollback leaves behind."""

    def __init__(self) -> None:
        super().__init__()
        #: Undo steps of the open transaction, newest last (None: none open).
        self._undo: list[Callable[[], None]] | None = None
        #: Each job saved since `begin`, as it was before (None: it is new).
        self._rows_before: dict[JobKey, JobInfo | None] = {}
        #: Index entries popped since `begin`, and the heap of each (two lists, not a
        #: tuple per entry for the cycle collector to count).
        self._popped: list[Any] = []
        self._popped_from: list[list[Any]] = []

    def begin(self) -> None:
        """Start recording changes so that `rollback` can take them back."""
        self._undo = []

    def commit(self) -> None:
        """Keep every change since `begin`."""
        self._undo = None
        self._rows_before.clear()
        self._popped.clear()
        self._popped_from.clear()

    def rollback(self) -> None:
        """Take back every change since `begin`."""
        undo, self._undo = self._undo or [], None
        for step in reversed(undo):
            step()
        for heap, entry in zip(self._popped_from, self._popped, strict=True):
            heapq.heappush(heap, entry)
        for key, row in self._rows_before.items():
            if row is None:
                self.jobs.pop(key, None)
            else:
                self.jobs[key] = row
        self._rows_before.clear()
        self._popped.clear()
        self._popped_from.clear()

    def _pop(self, heap: list[_E]) -> _E:
        entry = heapq.heappop(heap)
        if self._undo is not None:
            self._popped.append(entry)
            self._popped_from.append(heap)
        return entry

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        if self._undo is not None:
            key = (after.tenant_id, after.job_id)
            if key not in self._rows_before:
                self._rows_before[key] = self.jobs.get(key)
        super().save(before, after)

    def _remember(self, step: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(step)


def _keep_held(
    index: dict[_Group, list[_E]],
    jobs: dict[JobKey, JobInfo],
    tenant_of: Callable[[_Group], str],
) -> None:
    """Keep the entries of `index` whose job is in `jobs`; groups left empty go."""
    for group, entries in list(index.items()):
        tenant_id = tenant_of(group)
        kept = [e for e in entries if (tenant_id, e.job_id) in jobs]
        if kept:
            heapq.heapify(kept)
            index[group] = kept
        else:
            del index[group]
