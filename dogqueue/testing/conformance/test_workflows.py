"""Workflows on every backend: a job runs after its parents (`JobMessage.after`), a
parent that fails or is canceled cancels its waiting dependents (unless they opted in),
and a whole workflow enqueues, and cancels, all or nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from dogqueue import (
    FakeClock,
    InvalidInput,
    JobMessage,
    JobStatus,
    LeasedJob,
    ParentFinished,
    QueueConfig,
    QueueCtx,
    fold,
)
from dogqueue.audit.verify import compare_dependencies, verify_log
from dogqueue.backend.contract import Backend
from dogqueue.testing.conformance.fixtures import MakeBackend

from .helpers import log_size, message

CTX = QueueCtx("acme")
OTHER = QueueCtx("globex")


async def lease_of(backend: Backend, job_id: str) -> LeasedJob:
    """Lease the next ready job and check it is `job_id`."""
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None and lease.job_id == job_id
    return lease


async def run(backend: Backend, job_id: str, result: bytes | None = None) -> None:
    await backend.ack_complete(CTX, await lease_of(backend, job_id), result)


async def fail_for_good(backend: Backend, job_id: str, error: str = "boom") -> None:
    await backend.ack_fail(CTX, await lease_of(backend, job_id), error, retry=False)


async def test_a_child_waits_until_its_last_parent_completes(backend: Backend) -> None:
    a, b = await backend.enqueue_many(CTX, [message("a"), message("b")])
    child = await backend.enqueue(CTX, message("child", after=(a, b)))
    info = await backend.get_job(CTX, child)
    assert info.status is JobStatus.WAITING and info.waiting_for == (a, b)

    await run(backend, a)
    info = await backend.get_job(CTX, child)
    assert info.status is JobStatus.WAITING and info.waiting_for == (b,)
    lease_b = await lease_of(backend, b)  # b, never the child
    assert await backend.dequeue(CTX, ["default"]) is None
    await backend.ack_complete(CTX, lease_b)
    history = await backend.history(CTX, child)
    assert [e.type for e in history] == ["enqueued", "parent_finished", "parent_finished"]
    assert isinstance(history[-1], ParentFinished) and history[-1].parent_id == b
    # The release is in the same transaction as the completion: same time, next position.
    completed = (await backend.history(CTX, b))[-1]
    assert completed.type == "completed" and history[-1].at == completed.at
    assert await backend.get_status(CTX, child) is JobStatus.ENQUEUED
    await run(backend, child)


async def test_a_completed_parent_counts_as_done(backend: Backend) -> None:
    parent = await backend.enqueue(CTX, message("parent"))
    await run(backend, parent)
    child = await backend.enqueue(CTX, message("child", after=(parent,)))
    assert await backend.get_status(CTX, child) is JobStatus.ENQUEUED
    assert [e.type for e in await backend.history(CTX, child)] == ["enqueued"]


async def test_run_at_is_honoured_after_release(backend: Backend, clock: FakeClock) -> None:
    parent = await backend.enqueue(CTX, message("parent"))
    later = clock() + timedelta(hours=1)
    child = await backend.enqueue(CTX, message("child", after=(parent,), run_at=later))
    await run(backend, parent)
    assert await backend.get_status(CTX, child) is JobStatus.ENQUEUED
    assert await backend.dequeue(CTX, ["default"]) is None
    clock.advance(timedelta(hours=1))
    await run(backend, child)


async def test_a_failed_parent_cancels_its_dependents_recursively(backend: Backend) -> None:
    parent = await backend.enqueue(CTX, message("parent"))
    child = await backend.enqueue(CTX, message("child", after=(parent,)))
    grandchild = await backend.enqueue(CTX, message("grandchild", after=(child,)))
    await fail_for_good(backend, parent, "disk full")

    info = await backend.get_job(CTX, child)
    assert info.status is JobStatus.CANCELED
    assert info.last_error == f"parent {parent} failed: disk full"
    info = await backend.get_job(CTX, grandchild)
    assert info.status is JobStatus.CANCELED
    assert info.last_error == f"parent {child} canceled"
    assert await backend.dequeue(CTX, ["default"]) is None


async def test_a_canceled_parent_cancels_its_dependents(backend: Backend) -> None:
    parent = await backend.enqueue(CTX, message("parent"))
    child = await backend.enqueue(CTX, message("child", after=(parent,)))
    await backend.cancel_job(CTX, parent)
    info = await backend.get_job(CTX, child)
    assert info.status is JobStatus.CANCELED and info.last_error == f"parent {parent} canceled"


async def test_a_final_expiry_cancels_dependents(
    make_backend: MakeBackend, clock: FakeClock
) -> None:
    config = QueueConfig(default_lease_duration=timedelta(seconds=10))
    async with make_backend(config=config) as backend:
        parent = await backend.enqueue(CTX, message("parent", max_retries=0))
        child = await backend.enqueue(CTX, message("child", after=(parent,)))
        await lease_of(backend, parent)
        clock.advance(timedelta(seconds=11))
        assert await backend.reap_expired() == 1
        assert await backend.get_status(CTX, parent) is JobStatus.FAILED
        info = await backend.get_job(CTX, child)
        assert info.status is JobStatus.CANCELED
        assert info.last_error == f"parent {parent} failed: lease expired"


async def test_an_opted_in_dependent_runs_anyway(backend: Backend) -> None:
    good, bad = await backend.enqueue_many(CTX, [message("good"), message("bad")])
    child = await backend.enqueue(CTX, message("child", after=(good, bad), on_parent_failure="run"))
    await fail_for_good(backend, good)
    assert await backend.get_status(CTX, child) is JobStatus.WAITING
    await backend.cancel_job(CTX, bad)
    assert await backend.get_status(CTX, child) is JobStatus.ENQUEUED
    await run(backend, child)


async def test_a_parent_that_already_failed_cancels_a_new_child(backend: Backend) -> None:
    parent = await backend.enqueue(CTX, message("parent"))
    await fail_for_good(backend, parent, "bad input")
    child = await backend.enqueue(CTX, message("child", after=(parent,)))
    info = await backend.get_job(CTX, child)
    assert info.status is JobStatus.CANCELED
    assert info.last_error == f"parent {parent} failed: bad input"
    hopeful = await backend.enqueue(
        CTX, message("hopeful", after=(parent,), on_parent_failure="run")
    )
    assert await backend.get_status(CTX, hopeful) is JobStatus.ENQUEUED


@pytest.mark.parametrize("bad", ["no-such-job", "OTHER-TENANT"])
async def test_unknown_or_foreign_parents_are_refused(backend: Backend, bad: str) -> None:
    mine = await backend.enqueue(CTX, message("mine"))
    if bad == "OTHER-TENANT":
        bad = await backend.enqueue(OTHER, message("theirs"))
    before = await log_size(backend)
    with pytest.raises(InvalidInput) as refused:
        await backend.enqueue_many(CTX, [message("a"), message("b", after=(mine, bad))])
    assert refused.value.field == "after"
    assert await log_size(backend) == before


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([message("a", after_earlier=(0,))], "after_earlier"),
        ([message("a"), message("b", after_earlier=(1,))], "after_earlier"),
        ([message("a"), message("b", after_earlier=(0, 0))], "after_earlier"),
        ([message("a", after=("x", "x"))], "after"),
        ([message("a", after=["x"])], "after"),
        ([message("a", on_parent_failure="maybe")], "on_parent_failure"),
    ],
)
async def test_malformed_dependencies_are_refused(
    backend: Backend, messages: list[JobMessage], field: str
) -> None:
    before = await log_size(backend)
    with pytest.raises(InvalidInput) as refused:
        await backend.enqueue_many(CTX, messages)
    assert refused.value.field == field
    assert await log_size(backend) == before


async def test_a_chord_in_one_call_is_all_or_nothing(backend: Backend) -> None:
    await backend.enqueue(CTX, message("taken", idempotency_key="k", queue="elsewhere"))
    before = await log_size(backend)
    header = [message("a"), message("b", idempotency_key="k")]
    with pytest.raises(Exception, match="k"):
        await backend.enqueue_many(CTX, [*header, message("sum", after_earlier=(0, 1))])
    assert await log_size(backend) == before

    a, b, total = await backend.enqueue_many(
        CTX, [message("a"), message("b"), message("sum", after_earlier=(0, 1))]
    )
    info = await backend.get_job(CTX, total)
    assert info.status is JobStatus.WAITING and info.message.after == (a, b)
    assert info.message.after_earlier == ()
    await run(backend, a)
    await run(backend, b)
    await run(backend, total)


async def test_a_fan_out_of_1000_and_a_fan_in_lease_it_once_after_the_last(
    backend: Backend,
) -> None:
    children = [message("part", payload=str(i).encode()) for i in range(1000)]
    ids = await backend.enqueue_many(
        CTX, [*children, message("merge", after_earlier=tuple(range(1000)))]
    )
    merge = ids[-1]
    leased_merge = 0
    done = 0
    while True:
        leases = await backend.dequeue_many(CTX, ["default"], 100)
        if not leases:
            break
        for lease in leases:
            if lease.job_id == merge:
                leased_merge += 1
                assert done == 1000  # after the last child, never before
            else:
                assert leased_merge == 0
        await asyncio.gather(*(backend.ack_complete(CTX, lease) for lease in leases))
        done += len(leases)
    assert leased_merge == 1 and done == 1001
    assert await backend.get_status(CTX, merge) is JobStatus.COMPLETED
    history = await backend.history(CTX, merge)
    assert sum(isinstance(e, ParentFinished) for e in history) == 1000


async def test_cancel_workflow_cancels_every_descendant(backend: Backend) -> None:
    root, side = await backend.enqueue_many(
        CTX, [message("root"), message("side", queue="elsewhere")]
    )
    # a completed child of the root whose own children are live, and a grandchild that
    # also waits on an unrelated job
    done, waiting = await backend.enqueue_many(
        CTX, [message("done", after=(root,)), message("waiting", after=(root, side))]
    )
    await run(backend, root)
    ready = await backend.enqueue(CTX, message("ready", after=(done,)))
    await run(backend, done)
    opted = await backend.enqueue(CTX, message("opted", after=(ready,), on_parent_failure="run"))
    assert await backend.get_status(CTX, ready) is JobStatus.ENQUEUED

    canceled = await backend.cancel_workflow(CTX, root)
    assert sorted(canceled) == sorted([waiting, ready, opted])
    for job_id in (waiting, ready, opted):
        assert await backend.get_status(CTX, job_id) is JobStatus.CANCELED
    assert await backend.get_status(CTX, root) is JobStatus.COMPLETED
    assert await backend.get_status(CTX, side) is JobStatus.ENQUEUED  # not a descendant
    assert await backend.cancel_workflow(CTX, root) == []


async def test_waiting_jobs_replay_to_the_same_state(backend: Backend) -> None:
    a, b, c = await backend.enqueue_many(
        CTX,
        [message("a"), message("b", after_earlier=(0,)), message("c", after_earlier=(0, 1))],
    )
    await run(backend, a)
    projected = await backend.projected_jobs()
    for job_id in (a, b, c):
        assert fold(await backend.history(CTX, job_id)).waiting_for == (
            projected[("acme", job_id)].waiting_for
        )
    assert await backend.rebuild_projections() > 0
    assert await backend.projected_jobs() == projected
    await run(backend, b)  # the rebuilt dependency index still releases c
    assert await backend.get_status(CTX, c) is JobStatus.ENQUEUED


async def test_verify_checks_the_dependency_index(backend: Backend) -> None:
    a, b = await backend.enqueue_many(CTX, [message("a"), message("b", after_earlier=(0,))])
    report = await verify_log(backend.log_reader())
    assert report.ok, report.problems
    assert await backend.log_reader().dependencies() == [("acme", a, b)]
    compare_dependencies(report, [("acme", b, a)])  # an index that says otherwise
    assert [p.what for p in report.problems[-2:]] == [
        f"dependency index holds {b!r} -> {a!r} of 'acme', which no job names",
        f"dependency index lacks {a!r} -> {b!r} of 'acme'",
    ]
