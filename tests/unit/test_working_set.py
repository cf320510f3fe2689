"""The kit's undoable working set: a rollback restores every row, key, dependent and
index entry the transaction touched, and a job indexed as due is still never handed out
before its `run_at` when the clock is set back."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

import msgspec

from dogqueue.backend.kit.workingset import UndoableWorkingSet
from dogqueue.core.commands import Enqueue, Lease
from dogqueue.core.config import QueueConfig
from dogqueue.core.decide import decide
from dogqueue.core.evolve import evolve
from dogqueue.core.job import Completion, Failure, JobInfo
from dogqueue.core.message import JobMessage
from dogqueue.engine import lease_of

T0 = datetime(2030, 1, 1, tzinfo=UTC)
CONFIG = QueueConfig()


def _created(job_id: str, seq: int, **options: object) -> JobInfo:
    message = JobMessage(job_type="t", payload_bytes=b"{}", **options)  # type: ignore[arg-type]
    command = Enqueue(tenant_id="acme", job_id=job_id, at=T0, message=message)
    [event] = decide(None, command, CONFIG)
    return evolve(None, msgspec.structs.replace(event, seq=seq))


def _leased(job: JobInfo) -> JobInfo:
    command = Lease(tenant_id="acme", job_id=job.job_id, at=T0, duration=timedelta(minutes=1))
    [event] = decide(job, command, CONFIG)
    return evolve(job, event)


def test_a_due_job_is_not_handed_out_before_its_run_at_when_the_clock_goes_back() -> None:
    ws = UndoableWorkingSet()
    job = _created("a", 1)
    ws.save(None, job)  # due when saved: indexed ready at once
    assert ws.next_ready("acme", ("default",), T0 - timedelta(seconds=1)) is None
    assert ws.next_ready("acme", ("default",), T0) == job


def test_a_rollback_takes_back_rows_keys_dependents_and_index_entries() -> None:
    ws = UndoableWorkingSet()
    parent = _created("p", 1)
    ws.save(None, parent)
    rows, keys = dict(ws.jobs), dict(ws.keys)
    children = {key: list(ids) for key, ids in ws.children.items()}

    ws.begin()
    leased = _leased(parent)
    ws.save(parent, leased)  # the ready entry goes stale
    assert ws.next_ready("acme", ("default",), T0) is None  # pops it
    ws.save(None, _created("c", 2, after=("p",), idempotency_key="k"))
    assert ws.expired_leases("acme", T0 + timedelta(hours=1)) == [leased]  # pops the lease
    ws.rollback()

    assert ws.jobs == rows
    assert ws.keys == keys
    assert {k: v for k, v in ws.children.items() if v} == children
    assert ws.next_ready("acme", ("default",), T0) == parent
    assert ws.expired_leases("acme", T0 + timedelta(hours=1)) == []


def test_a_commit_keeps_every_change() -> None:
    ws = UndoableWorkingSet()
    parent = _created("p", 1)
    ws.begin()
    ws.save(None, parent)
    ws.commit()
    ws.rollback()  # nothing open: nothing to take back
    assert ws.next_ready("acme", ("default",), T0) == parent


def test_index_entries_and_per_call_values_are_left_to_reference_counting() -> None:
    """What a working set holds per job (index entries) and what every call makes
    (commands, leases, settlements) is invisible to the cycle collector: with one or two
    entries per live job, tracked entries made every collection walk them all."""
    ws = UndoableWorkingSet()
    job = _created("a", 1)
    ws.save(None, job)
    ws.save(job, leased := _leased(job))
    entries: list[object] = [entry for heap in ws.ready.values() for entry in heap]
    entries += [entry for heap in ws.leases.values() for entry in heap]
    assert len(entries) == 2
    lease = lease_of(leased)
    per_call = [
        Lease(tenant_id="acme", job_id="a", at=T0, duration=timedelta(minutes=1)),
        lease,
        Completion(lease=lease),
        Failure(lease=lease, error="boom"),
    ]
    assert not any(gc.is_tracked(value) for value in [*entries, *per_call])
