"""Which PostgreSQL units may be in flight together (enqueues, claims, settles, by what
they read), and the leases a process remembers never go back a version when batches
land out of order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec

from dogqueue.backend.kit.batchset import BatchWorkingSet
from dogqueue.backend.postgres.lanes import CLAIM, ENQUEUE, SETTLE, beside, lane, remember_leases
from dogqueue.backend.postgres.reads import Known
from dogqueue.core.config import QueueConfig
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.core.status import JobStatus
from dogqueue.engine import Engine, Reads, Unit
from tests.unit.test_working_set import _created, _leased

A, B = ("acme", "a"), ("acme", "b")


def unit(**reads: Any) -> Unit[None]:
    return Unit(Reads(**reads), lambda tx, now: None)


def test_units_fall_in_lanes_by_what_they_read() -> None:
    engine = Engine(QueueConfig(), new_id=lambda: "j", draw=lambda: 0.5)
    dequeue = engine.dequeue_unit("acme", ("default",), timedelta(seconds=30), 100)
    assert lane(dequeue) == (CLAIM, 0)  # finds an unknown number: never cut in shares
    assert lane(unit(jobs=(A, B), dependents=(A, B))) == (SETTLE, 2)  # acks, cancels
    assert lane(unit(jobs=(A,))) == (SETTLE, 1)  # heartbeats, releases
    assert lane(unit(new_jobs=3, tenant="acme")) == (ENQUEUE, 3)
    assert lane(unit(new_jobs=1, keys=(("acme", "k"),))) == (ENQUEUE, 1)
    exclusive: list[Unit[Any]] = [
        engine.reclaim_unit(None),  # every tenant's expired leases
        engine.reclaim_unit("acme"),
        unit(new_jobs=1, jobs=(A,)),  # an enqueue with parents
        unit(new_jobs=1, key_prefixes=(("acme", "tick:"),)),  # a schedule's ticks
        unit(jobs=(A,), dependents=(B,)),
        unit(ready=(("acme", ("default",), 1),), expired=(None,)),
        unit(ready=(("acme", ("default",), 1),), jobs=(A,)),
        unit(),
    ]
    assert [lane(each) for each in exclusive] == [None] * len(exclusive)


def test_claims_and_settles_overlap_each_other_and_enqueues_only_enqueues() -> None:
    assert beside(CLAIM, SETTLE) and beside(SETTLE, CLAIM)
    assert all(beside(kind, kind) for kind in (CLAIM, SETTLE, ENQUEUE))
    assert not any(beside(ENQUEUE, kind) or beside(kind, ENQUEUE) for kind in (CLAIM, SETTLE))


def _batch(before: JobInfo | None, after: JobInfo) -> BatchWorkingSet:
    ws = BatchWorkingSet([])
    if before is not None:
        ws.seed(before, 0)
    ws.save(before, after)
    return ws


def test_a_batch_landing_late_does_not_replace_a_newer_remembered_lease() -> None:
    created = _created("a", 1)
    first = _leased(created)
    newer = msgspec.structs.replace(first, version=first.version + 2)
    leased: dict[JobKey, Known] = {}
    remember_leases(leased, _batch(first, newer))  # the later batch lands first
    remember_leases(leased, _batch(created, first))
    assert leased[A].job.version == newer.version
    done = msgspec.structs.replace(first, status=JobStatus.COMPLETED, version=first.version + 1)
    remember_leases(leased, _batch(first, done))  # older than the lease remembered
    assert leased[A].job.version == newer.version
    remember_leases(leased, _batch(newer, msgspec.structs.replace(done, version=newer.version + 1)))
    assert A not in leased
