"""A unit of work's strict view of a working set: every read the unit did not declare
(`dogqueue.engine.Reads`) raises UndeclaredRead, so that a declaration that falls short
fails on the memory backend, in every test run, and not only on a backend that fetches
a batch's reads ahead (PostgreSQL, Redis), where a short one means a wrong answer.

What a unit declared grows with what its reads return: a job that `next_ready`,
`expired_leases` or `dependents` handed it, or that it wrote, may be loaded; the
dependents of a job it may end, of a lease it reclaimed, of one of their dependents,
or of a job it created may be read.

The memory, PostgreSQL and Redis backends run every unit through it. The SQLite backend
holds every live job in memory, so a read it did not declare still gets the right answer
there: it checks only when `$DOGQUEUE_CHECK_READS` is "1" (the pytest plugin sets it,
so every test run checks), sparing the production path the view's cost per read.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TypeVar

from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent, Enqueued
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.engine import PlainEnqueue, Reads, Transaction, Unit, Work

T = TypeVar("T")

#: The environment variable that makes the SQLite backend check every unit's reads ("1").
CHECK_READS_ENV = "DOGQUEUE_CHECK_READS"


def reads_checked() -> bool:
    """Whether a backend that may skip the check (SQLite) checks every unit's reads."""
    return os.environ.get(CHECK_READS_ENV) == "1"


class UndeclaredRead(StorageError):
    """A unit of work read something its `Reads` did not declare (a dogqueue bug)."""


class StrictView:
    """A Transaction that passes the declared reads of one unit through to `inner` and
    refuses the others; writes pass through."""

    __slots__ = ("_creatable", "_ending", "_inner", "_leases_left", "_loadable", "_reads")

    def __init__(self, inner: Transaction, reads: Reads) -> None:
        self._inner = inner
        self._reads = reads
        #: Jobs the unit may load.
        self._loadable: set[JobKey] = set(reads.jobs)
        #: Jobs whose dependents the unit may read.
        self._ending: set[JobKey] = set(reads.dependents)
        #: Jobs each declared dequeue may still lease, by (tenant, queues).
        self._leases_left = {(tenant, queues): n for tenant, queues, n in reads.ready}
        #: Jobs the unit may still create.
        self._creatable = reads.new_jobs

    def _seen(self, job: JobInfo, *, ending: bool = False) -> JobInfo:
        key = (job.tenant_id, job.job_id)
        self._loadable.add(key)
        if ending:
            self._ending.add(key)
        return job

    def load(self, tenant_id: str, job_id: str) -> JobInfo | None:
        if (tenant_id, job_id) not in self._loadable:
            raise UndeclaredRead(f"load of {(tenant_id, job_id)} was not declared")
        return self._inner.load(tenant_id, job_id)

    def job_for_key(self, tenant_id: str, idempotency_key: str) -> str | None:
        if (tenant_id, idempotency_key) not in self._reads.keys:
            raise UndeclaredRead(f"key lookup {(tenant_id, idempotency_key)} was not declared")
        return self._inner.job_for_key(tenant_id, idempotency_key)

    def latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        if (tenant_id, prefix) not in self._reads.key_prefixes:
            raise UndeclaredRead(f"latest key of {(tenant_id, prefix)} was not declared")
        return self._inner.latest_key(tenant_id, prefix)

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        left = self._leases_left.get((tenant_id, queues), 0)
        if left < 1:
            raise UndeclaredRead(f"a dequeue of {tenant_id!r} from {queues} was not declared")
        job = self._inner.next_ready(tenant_id, queues, now)
        if job is None:
            return None
        self._leases_left[(tenant_id, queues)] = left - 1
        return self._seen(job)

    def expired_leases(self, tenant_id: str | None, now: datetime) -> list[JobInfo]:
        if tenant_id not in self._reads.expired and None not in self._reads.expired:
            raise UndeclaredRead(f"reclaim for {tenant_id!r} was not declared")
        return [self._seen(job, ending=True) for job in self._inner.expired_leases(tenant_id, now)]

    def dependents(self, tenant_id: str, job_id: str) -> list[str]:
        if (tenant_id, job_id) not in self._ending:
            raise UndeclaredRead(f"dependents of {(tenant_id, job_id)} were not declared")
        children = self._inner.dependents(tenant_id, job_id)
        for child in children:  # the closure: a dependent this ends has its own
            self._loadable.add((tenant_id, child))
            self._ending.add((tenant_id, child))
        return children

    def append(self, event: AnyEvent) -> AnyEvent:
        if isinstance(event, Enqueued):
            if self._creatable < 1:
                raise UndeclaredRead("more jobs created than declared")
            self._creatable -= 1
        return self._inner.append(event)

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        self._inner.save(before, after)
        self._seen(after, ending=before is None)  # a new job's dependents are all known


def strictly(unit: Unit[T]) -> Work[T]:
    """The unit's work, run through a StrictView of whatever transaction it is given; a
    plain enqueue as it is (it reads nothing, and `run_units` must see it to group it)."""
    reads, run = unit
    if isinstance(run, PlainEnqueue):
        return run  # type: ignore[return-value]  # T is list[str] for it
    return lambda tx, now: run(StrictView(tx, reads), now)
