"""Metrics folded from the log, on every backend."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from dogqueue import Canceled, Enqueued, FakeClock, InvalidInput, JobStatus, QueueAdapter, rebuild
from dogqueue.backend.base import EngineBackend
from dogqueue.observability import MetricsFold, MetricsReader, metrics_from_events
from dogqueue.observability.outcome import Outcome
from tests.observability.obs_workload import ACME, GLOBEX, message, run_workload


async def test_counts_durations_and_rates(backend: EngineBackend, clock: FakeClock) -> None:
    await run_workload(backend, clock)
    metrics = await QueueAdapter(backend).observability.metrics()

    assert metrics.at == clock()
    assert metrics.job_types == ["email", "report"]
    assert metrics.get_job_count("email") == 6
    assert metrics.get_job_count("email", JobStatus.COMPLETED) == 2
    assert metrics.get_job_count("email", JobStatus.LEASED) == 1
    assert metrics.get_job_count("report") == 4
    assert metrics.get_job_count("report", JobStatus.FAILED) == 1
    assert metrics.get_job_count("report", JobStatus.CANCELED) == 1
    assert metrics.get_job_count("unknown") == 0

    assert metrics.get_average_execution_time("email") == timedelta(seconds=3)
    assert metrics.get_average_execution_time("report") is None
    assert metrics.get_success_count("email") == 2
    assert metrics.get_failure_count("email") == 2  # one failed, one lease expired
    assert metrics.get_success_rate("email") == 0.5
    assert metrics.get_failure_rate("report") == 1.0
    assert metrics.get_success_rate("unknown") is None
    assert metrics.get_retry_count("email") == 2
    assert metrics.get_retry_count("report") == 0
    assert metrics.get_dead_count("report") == 1

    assert metrics.get_queue_depth("reports") == {"ready": 1, "scheduled": 1, "leased": 0}
    assert metrics.get_queue_depth("default") == {"ready": 2, "scheduled": 1, "leased": 1}
    # The ready report job was enqueued at the start and has waited ever since.
    assert metrics.get_oldest_ready_age("reports") == timedelta(seconds=19)
    assert metrics.get_oldest_ready_age(job_type="email") == timedelta(seconds=11)

    execution = metrics.counters("email").execution
    assert execution[Outcome.COMPLETED].count == 2
    assert execution[Outcome.FAILED].total == timedelta(seconds=1)
    assert execution[Outcome.EXPIRED].total == timedelta(seconds=11)


async def test_one_tenant_when_ctx_is_given(backend: EngineBackend, clock: FakeClock) -> None:
    await run_workload(backend, clock)
    observability = QueueAdapter(backend).observability
    acme = await observability.metrics(ACME)
    globex = await observability.metrics(GLOBEX)
    assert {item.key.tenant_id for item in acme.series} == {"acme"}
    assert acme.get_job_count("email") == 3
    assert globex.get_job_count("email") == 3
    assert globex.get_job_count("report") == 0
    assert globex.get_average_execution_time("email") is None
    assert acme.get_average_execution_time("email") == timedelta(seconds=3)
    with pytest.raises(InvalidInput, match="ctx"):
        await observability.metrics("acme")  # type: ignore[arg-type]


async def test_status_counts_equal_the_fold_of_the_log(
    backend: EngineBackend, clock: FakeClock
) -> None:
    await run_workload(backend, clock)
    events = await backend.read_events()
    metrics = metrics_from_events(events, clock())
    jobs = rebuild(events)
    by_type_and_status = Counter((info.message.job_type, info.status) for info in jobs.values())
    for (job_type, status), count in by_type_and_status.items():
        assert metrics.get_job_count(job_type, status) == count
    assert sum(metrics.get_job_count(t) for t in metrics.job_types) == len(jobs)
    ready = [j for j in jobs.values() if j.status is JobStatus.ENQUEUED and j.run_at <= clock()]
    assert sum(metrics.get_queue_depth(q)["ready"] for q in metrics.queues) == len(ready)


async def test_incremental_reads_equal_a_full_fold(
    backend: EngineBackend, clock: FakeClock
) -> None:
    reader = MetricsReader(backend, page_size=3)
    await reader.snapshot()  # folds the empty log
    await run_workload(backend, clock)
    first = await reader.snapshot()
    assert reader.last_position == (await backend.read_events())[-1].seq
    await backend.enqueue(ACME, message("email"))
    later = await reader.snapshot()
    full = metrics_from_events(await backend.read_events(), clock())
    assert later.to_dict() == full.to_dict()
    assert later.get_job_count("email") == first.get_job_count("email") + 1


async def test_needs_no_registered_job_classes(backend: EngineBackend, clock: FakeClock) -> None:
    await backend.enqueue(ACME, message("never.registered"))
    metrics = await QueueAdapter(backend).observability.metrics()
    assert metrics.get_job_count("never.registered", JobStatus.ENQUEUED) == 1


async def test_reading_does_not_block_the_event_loop(
    backend: EngineBackend, clock: FakeClock
) -> None:
    await backend.enqueue_many(ACME, [message("bulk") for _ in range(300)])
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    metrics = await MetricsReader(backend, page_size=50).snapshot()
    during = ticks - before
    stop.set()
    await task
    assert metrics.get_job_count("bulk") == 300
    # Six pages were read and folded; the loop ran other tasks in between.
    assert during >= 6


def test_events_of_a_job_whose_enqueue_was_not_folded_are_ignored(clock: FakeClock) -> None:
    # A reader may start from a later position; it must not invent jobs.
    fold = MetricsFold()
    fold.apply(Canceled(tenant_id="t", job_id="j", version=2, at=clock(), seq=7))
    assert fold.snapshot(clock()).series == ()
    assert fold.last_position == 7
    fold.apply(Enqueued(tenant_id="t", job_id="k", version=1, at=clock(), message=message("x")))
    assert fold.snapshot(clock()).get_job_count("x") == 1


def test_page_size_is_validated(clock: FakeClock) -> None:
    from dogqueue.backend.memory import MemoryBackend

    with pytest.raises(InvalidInput, match="page_size"):
        MetricsReader(MemoryBackend(clock=clock), page_size=0)


async def test_workflow_statuses_equal_the_fold_of_the_log(
    backend: EngineBackend, clock: FakeClock
) -> None:
    """Waiting jobs are not ready; a released one is, a canceled dependent is canceled."""
    ids = await backend.enqueue_many(
        ACME,
        [
            message("part"),
            message("part"),
            message("merge", after_earlier=(0, 1)),
            message("anyway", after_earlier=(0, 1), on_parent_failure="run"),
            message("after_first", after_earlier=(0,)),
        ],
    )

    async def check() -> None:
        events = await backend.read_events()
        metrics = metrics_from_events(events, clock())
        jobs = rebuild(events).values()
        counted = Counter((j.message.job_type, j.status) for j in jobs)
        for (job_type, status), count in counted.items():
            assert metrics.get_job_count(job_type, status) == count, (job_type, status)
        ready = [j for j in jobs if j.status is JobStatus.ENQUEUED and j.run_at <= clock()]
        assert sum(metrics.get_queue_depth(q)["ready"] for q in metrics.queues) == len(ready)

    await check()
    first = await backend.dequeue(ACME, ["default"])
    assert first is not None and first.job_id == ids[0]
    await backend.ack_complete(ACME, first)
    await check()
    second = await backend.dequeue(ACME, ["default"])
    assert second is not None and second.job_id == ids[1]
    await backend.ack_fail(ACME, second, "boom", retry=False)
    await check()
