"""A batch's working set: the kit's working set seeded with the rows a batch of units
declared (`Reads`) and fetched ahead, for a backend with a remote database (PostgreSQL;
Redis next). The units run on it with no I/O, each through its own strict view
(`strictview.strictly`: a read it did not declare raises UndeclaredRead); it numbers the
jobs they create from positions drawn ahead, and collects what they wrote (events in a
journal, each job's state before and after, new dependency edges) for the backend to
flush in a few statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from dogqueue.backend.kit.strictview import UndeclaredRead
from dogqueue.backend.kit.workingset import WorkingSet
from dogqueue.core.codec import decode_job, encode_event
from dogqueue.core.events import AnyEvent, Enqueued
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.core.status import JobStatus
from dogqueue.engine import Reads

__all__ = ["BatchReads", "BatchWorkingSet", "UndeclaredRead"]


@dataclass
class BatchReads:
    """The union of the reads of a batch's units."""

    jobs: set[JobKey] = field(default_factory=set)
    keys: set[tuple[str, str]] = field(default_factory=set)
    key_prefixes: set[tuple[str, str]] = field(default_factory=set)
    new_jobs: int = 0
    ready: dict[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)
    expired: set[str | None] = field(default_factory=set)
    dependents: set[JobKey] = field(default_factory=set)

    def add(self, reads: Reads) -> None:
        """Declare one unit's reads too."""
        self.jobs.update(reads.jobs)
        self.keys.update(reads.keys)
        self.key_prefixes.update(reads.key_prefixes)
        self.new_jobs += reads.new_jobs
        for tenant, queues, n in reads.ready:
            self.ready[(tenant, queues)] = self.ready.get((tenant, queues), 0) + n
        self.expired.update(reads.expired)
        self.dependents.update(reads.dependents)


class BatchWorkingSet(WorkingSet):
    """A sync Transaction on the rows one batch fetched; reads see the batch's writes.
    Each unit runs through its own StrictView; this only refuses reads of dependents it
    did not fetch (whoever declared them) and more new jobs than positions drawn."""

    def __init__(self, seqs: list[int]) -> None:
        super().__init__()
        self._seqs = seqs[::-1]  # popped from the end, smallest first
        self.writes = 0
        #: The highest seq the flush gave an event.
        self.last_seq = 0
        #: Whether the flush's commit also announced new work (a NOTIFY).
        self.notified = False
        #: Events to insert: (seq or None, tenant, job, version, type, data).
        self.journal: list[tuple[int | None, str, str, int, str, bytes]] = []
        #: For each job written: its state before the batch (None: new) and now.
        self.before: dict[JobKey, JobInfo | None] = {}
        #: Each fetched job's stored number of dependents (the flush guards on it).
        self.stored_dependents: dict[JobKey, int] = {}
        #: Dependents this batch created, per parent, and the dependency rows to insert.
        self.adopted: dict[JobKey, int] = {}
        self.new_edges: list[tuple[str, str, int, str]] = []
        #: Jobs whose every dependent is in this working set.
        self._dependents_known: set[JobKey] = set()

    # -- seeding -----------------------------------------------------------------------

    def seed(self, job: JobInfo, dependents: int) -> None:
        """Add a fetched (and locked) row and its stored number of dependents."""
        key = (job.tenant_id, job.job_id)
        if key not in self.jobs:
            self.jobs[key] = job
            self.stored_dependents[key] = dependents
            if not dependents:  # none stored; the flush's guard sees any added meanwhile
                self._dependents_known.add(key)
            self._index(job)

    def closure_roots(self, keys: set[JobKey]) -> list[JobKey]:
        """Of these jobs (those the batch may end), the fetched ones with dependents
        stored: their dependents closure must be fetched."""
        return sorted(key for key in keys if self.stored_dependents.get(key, 0))

    def seed_closure(self, roots: list[JobKey], rows: list[tuple[Any, ...]]) -> None:
        """Add the fetched dependents closure of `roots`: (tenant, parent, child, child
        state, its dependents), oldest child of each parent first."""
        self._dependents_known.update(roots)
        for tenant_id, parent_id, child_id, state, dependents in rows:
            self.seed(decode_job(bytes(state)), int(dependents))
            self.children[(tenant_id, parent_id)].append(child_id)
            self._dependents_known.add((tenant_id, child_id))

    def seed_key(self, tenant_id: str, key: str, job_id: str) -> None:
        """Add a fetched idempotency key."""
        self._add_key(tenant_id, key, job_id)

    # -- Transaction -------------------------------------------------------------------

    def dependents(self, tenant_id: str, job_id: str) -> list[str]:
        if (tenant_id, job_id) not in self._dependents_known:
            raise UndeclaredRead(f"dependents of {(tenant_id, job_id)} were not fetched")
        return super().dependents(tenant_id, job_id)

    def _adopt(self, child: JobInfo) -> None:
        super()._adopt(child)
        self._dependents_known.add((child.tenant_id, child.job_id))  # a new job has none
        for parent in child.message.after:
            key = (child.tenant_id, parent)
            self.adopted[key] = self.adopted.get(key, 0) + 1
            self.new_edges.append((child.tenant_id, parent, child.enqueue_seq, child.job_id))

    def append(self, event: AnyEvent) -> AnyEvent:
        self.writes += 1
        seq: int | None = None
        if isinstance(event, Enqueued):
            if not self._seqs:
                raise UndeclaredRead("more jobs created than positions drawn")
            seq = self._seqs.pop()
            event = msgspec.structs.replace(event, seq=seq)
        self.journal.append(
            (seq, event.tenant_id, event.job_id, event.version, event.type, encode_event(event))
        )
        return event

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        self.writes += 1
        key = (after.tenant_id, after.job_id)
        if key not in self.before:
            self.before[key] = before
        super().save(before, after)

    def became_ready(self) -> bool:
        """Whether a job written by this batch can be leased now or later."""
        return any(
            self.jobs[key].status is JobStatus.ENQUEUED
            and (before is None or before.status is not JobStatus.ENQUEUED)
            for key, before in self.before.items()
        )
