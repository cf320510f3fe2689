"""Operator controls (pause and resume a queue or a schedule, run a schedule now) are
events in the log on every backend: stored on the tenant's control stream through the
ordinary append path, chained and verified, version-guarded, read back by one read, and
skipped by every fold of job state (projection, rebuild, replay, verify, time travel,
metrics)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from dogqueue import FakeClock, Job, QueueAdapter, QueueCtx, Schedule, enqueue_due, rebuild
from dogqueue.audit.api import jobs_at, tenant_as_of
from dogqueue.audit.replay import replay
from dogqueue.audit.timetravel import AsOf
from dogqueue.audit.verify import verify_log
from dogqueue.backend.base import EngineBackend
from dogqueue.controls import (
    ALL_TENANTS_CTX,
    pause_queue,
    pause_schedule,
    read_controls,
    resume_queue,
    resume_schedule,
    run_schedule_now,
)
from dogqueue.core.controls import pending_runs, run_now_key
from dogqueue.core.errors import InvalidInput, QueueError
from dogqueue.core.events import CONTROL_STREAM, QueueControl, QueuePaused, ScheduleControl
from dogqueue.core.status import JobStatus
from dogqueue.engine import Reads, Transaction, Unit
from dogqueue.observability.reader import Observability
from dogqueue.schedules import enqueue_requested_runs

from .helpers import log_size, message

ACME, GLOBEX = QueueCtx("acme"), QueueCtx("globex")


@pytest.fixture(autouse=True)
def _runs_units(backend: EngineBackend) -> None:
    if not callable(getattr(backend, "run_unit", None)):
        pytest.skip("the backend has no run_unit, which control events are appended with")


async def test_pause_and_resume_are_events_read_back_per_tenant(
    backend: EngineBackend, clock: FakeClock
) -> None:
    before = await log_size(backend)
    assert await pause_queue(backend, ACME, "mail", actor="cli:alice")
    assert not await pause_queue(backend, ACME, "mail")  # already paused: nothing appended
    assert await log_size(backend) == before + 1
    assert (await read_controls(backend, ACME)).paused_queues == {"mail"}
    assert (await read_controls(backend, GLOBEX)).paused_queues == frozenset()

    clock.advance(timedelta(seconds=3))
    assert await resume_queue(backend, ACME, "mail")
    assert not await resume_queue(backend, ACME, "mail")  # not paused: nothing appended
    assert not await resume_queue(backend, GLOBEX, "mail")
    controls = await read_controls(backend, ACME)
    assert (controls.paused_queues, controls.version) == (frozenset(), 2)

    events = (await backend.read_events())[before:]
    assert [(e.type, e.tenant_id, e.job_id, e.version) for e in events] == [
        ("queue_paused", "acme", CONTROL_STREAM, 1),
        ("queue_resumed", "acme", CONTROL_STREAM, 2),
    ]
    paused = events[0]
    assert isinstance(paused, QueuePaused) and paused.actor == "cli:alice"
    assert events[1].at - paused.at == timedelta(seconds=3)


async def test_all_tenant_pauses_live_on_their_own_stream(backend: EngineBackend) -> None:
    assert await pause_queue(backend, ALL_TENANTS_CTX, "reports")
    assert (await read_controls(backend, ALL_TENANTS_CTX)).paused_queues == {"reports"}
    assert (await read_controls(backend, ACME)).paused_queues == frozenset()


async def test_schedule_controls_and_run_requests(backend: EngineBackend) -> None:
    assert await pause_schedule(backend, ACME, "nightly")
    assert not await pause_schedule(backend, ACME, "nightly")
    assert await run_schedule_now(backend, ACME, "nightly")
    assert await run_schedule_now(backend, ACME, "nightly")  # each request is one run
    assert await resume_schedule(backend, ACME, "nightly")
    assert not await resume_schedule(backend, ACME, "hourly")
    controls = await read_controls(backend, ACME)
    assert controls.paused_schedules == frozenset()
    assert controls.run_requests == (("nightly", 2), ("nightly", 3))
    assert pending_runs(controls, "nightly", None) == [2, 3]
    assert pending_runs(controls, "nightly", run_now_key("nightly", 2)) == [3]
    assert pending_runs(controls, "hourly", None) == []


async def test_bad_input_is_refused_by_field_and_appends_nothing(
    backend: EngineBackend,
) -> None:
    before = await log_size(backend)
    cases = [
        (pause_queue(backend, ACME, ""), "queue"),
        (resume_queue(backend, ACME, 7), "queue"),  # type: ignore[arg-type]
        (pause_queue(backend, "acme", "mail"), "ctx"),  # type: ignore[arg-type]
        (pause_queue(backend, ACME, "mail", actor=""), "actor"),
        (pause_schedule(backend, ACME, "a@b"), "name"),
        (run_schedule_now(backend, ACME, ""), "name"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidInput) as refused:
            await call
        assert refused.value.field == field
    assert await log_size(backend) == before


async def test_a_stale_version_is_refused_by_storage(backend: EngineBackend) -> None:
    await pause_queue(backend, ACME, "mail")
    stale = QueuePaused(
        tenant_id="acme", job_id=CONTROL_STREAM, version=1, at=backend.now(), queue="other"
    )

    def append_again(tx: Transaction, now: object) -> None:
        tx.append(stale)

    before = await log_size(backend)
    with pytest.raises(QueueError):
        await backend.run_unit(Unit(Reads(tenant="acme"), append_again))
    assert await log_size(backend) == before
    assert (await read_controls(backend, ACME)).paused_queues == {"mail"}


async def test_every_fold_of_job_state_skips_control_events(
    backend: EngineBackend, clock: FakeClock
) -> None:
    first = await backend.enqueue(ACME, message(queue="mail"))
    await pause_queue(backend, ACME, "mail")
    lease = await backend.dequeue(ACME, ["mail"])
    assert lease is not None and lease.job_id == first  # storage leases; workers filter
    await backend.ack_complete(ACME, lease)
    await pause_queue(backend, ALL_TENANTS_CTX, "mail")
    await run_schedule_now(backend, GLOBEX, "nightly")
    clock.advance(timedelta(seconds=1))
    await backend.enqueue(GLOBEX, message())
    await resume_queue(backend, ACME, "mail")

    live = await backend.projected_jobs()
    assert sorted(live) == sorted([("acme", first), *[k for k in live if k[0] == "globex"]])
    assert len(live) == 2
    assert live == rebuild(await backend.read_events())
    assert await backend.rebuild_projections() == len(await backend.read_events())
    assert await backend.projected_jobs() == live
    # A rebuild keeps the control streams readable and guarded.
    assert (await read_controls(backend, ACME)).version == 2
    assert await pause_queue(backend, ACME, "reports")
    assert (await read_controls(backend, ACME)).paused_queues == {"reports"}

    log = backend.log_reader()
    assert (await replay(log)).differing == ()
    report = await verify_log(log, audit_key=getattr(backend, "audit_key", None))
    assert report.ok, report.problems
    assert [job.job_id for job in await jobs_at(log, "acme", AsOf())] == [first]
    past = await tenant_as_of(log, ACME, AsOf(seq=3))  # enqueued, paused, leased
    assert [job.status for job in past.values()] == [JobStatus.LEASED]
    metrics = await Observability(backend).metrics(ACME)
    assert metrics.get_job_count(status=JobStatus.COMPLETED) == 1
    assert sum(metrics.get_job_count(status=s) for s in JobStatus) == 1


class Report(Job[None, None]):
    JOB_TYPE = "report"

    async def execute(self, ctx: None) -> None:
        return None


async def test_a_paused_schedule_enqueues_no_tick_until_resumed(
    backend: EngineBackend, clock: FakeClock
) -> None:
    adapter: QueueAdapter[None] = QueueAdapter(backend)
    await adapter.register_job(Report)
    hourly = Schedule("hourly", "0 * * * *", Report(), tenant=ACME)
    other = Schedule("other", "0 * * * *", Report(), tenant=GLOBEX)
    clock.set(clock().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
    await pause_schedule(backend, ACME, "hourly")
    await pause_schedule(backend, ALL_TENANTS_CTX, "other")
    assert await enqueue_due(adapter, [hourly, other]) == []
    assert await resume_schedule(backend, ACME, "hourly")
    assert len(await enqueue_due(adapter, [hourly, other])) == 1
    assert await backend.latest_tick(ACME, "hourly") is not None
    assert await backend.latest_tick(GLOBEX, "other") is None


async def test_each_run_request_makes_exactly_one_job(backend: EngineBackend) -> None:
    adapter: QueueAdapter[None] = QueueAdapter(backend)
    await adapter.register_job(Report)
    nightly = Schedule("nightly", "0 3 * * *", Report(), tenant=ACME, queue="reports")
    await pause_schedule(backend, ACME, "nightly")  # a paused schedule still runs on request
    await run_schedule_now(backend, ACME, "nightly")
    await run_schedule_now(backend, ACME, "nightly")
    racing = await asyncio.gather(*(enqueue_requested_runs(adapter, [nightly]) for _ in range(5)))
    ids = [job_id for found in racing for job_id in found]
    assert len(ids) == len(set(ids)) == 2
    seen: dict[tuple[str, str], int] = {}
    assert await enqueue_requested_runs(adapter, [nightly], seen) == []
    assert seen == {("acme", "nightly"): 3}
    await run_schedule_now(backend, ACME, "nightly")
    before = await log_size(backend)
    (third,) = await enqueue_requested_runs(adapter, [nightly], seen)
    assert await log_size(backend) == before + 1
    job = await backend.get_job(ACME, third)
    assert (job.message.queue, job.message.job_type) == ("reports", "report")
    assert job.message.idempotency_key == run_now_key("nightly", 4)
    assert await backend.latest_tick(ACME, "nightly") is None  # not a tick


async def test_every_read_returns_the_controls_as_appended(backend: EngineBackend) -> None:
    await pause_queue(backend, ACME, "mail")
    await pause_queue(backend, ACME, "reports")
    await pause_schedule(backend, ACME, "nightly")
    await run_schedule_now(backend, ACME, "hourly")
    await resume_queue(backend, ACME, "mail")
    expected = [
        ("queue_paused", "mail"),
        ("queue_paused", "reports"),
        ("schedule_paused", "nightly"),
        ("schedule_run_requested", "hourly"),
        ("queue_resumed", "mail"),
    ]

    def shown(events: list[Any]) -> list[tuple[str, str]]:
        return [
            (e.type, e.queue if isinstance(e, QueueControl) else e.schedule)
            for e in events
            if isinstance(e, QueueControl | ScheduleControl)
        ]

    log = backend.log_reader()
    assert shown(await backend.history(ACME, CONTROL_STREAM)) == expected
    assert shown(await backend.read_events()) == expected
    assert shown(await log.events()) == expected
    assert shown(await log.history("acme", CONTROL_STREAM)) == expected
    assert shown(await log.tenant_events("acme")) == expected
    controls = await read_controls(backend, ACME)
    assert controls.paused_queues == {"reports"}
    assert controls.paused_schedules == {"nightly"}
