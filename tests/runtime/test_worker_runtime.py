"""The worker on every backend (fake clock): outcomes, retries, timeouts, cancel,
leases, shutdown, fairness and the reaper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from dogqueue import (
    FakeClock,
    InvalidInput,
    JobMessage,
    JobStatus,
    Leased,
    QueueAdapter,
    QueueConfig,
    QueueCtx,
    Worker,
)
from dogqueue.backend.base import EngineBackend
from tests.runtime.helpers import (
    ALL_JOBS,
    Blocks,
    Counted,
    Crashes,
    Echo,
    Flaky,
    Probe,
    Slow,
    event_types,
    until,
    until_status,
    within,
)

T = QueueCtx("tenant-a")
NO_BACKOFF = QueueConfig(base_retry_backoff=timedelta(0))


async def make_adapter(backend: EngineBackend) -> QueueAdapter[Probe]:
    adapter: QueueAdapter[Probe] = QueueAdapter(backend)
    for job_class in ALL_JOBS:
        await adapter.register_job(job_class)
    return adapter


def worker(adapter: QueueAdapter[Probe], probe: Probe, **options: Any) -> Worker[Probe]:
    options.setdefault("handle_signals", False)
    return Worker(adapter, context=probe, **options)


async def test_runs_jobs_and_stores_results(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    ids = [await adapter.enqueue(T, Echo(text=f"m{i}")) for i in range(5)]
    async with worker(adapter, probe, tenants=[T], concurrency=2):
        for job_id in ids:
            await until_status(backend, T, job_id, JobStatus.COMPLETED)
    assert await adapter.get_result(T, ids[3], str) == "M3"
    assert probe.runs == {f"m{i}": 1 for i in range(5)}


async def test_retryable_failure_is_retried_then_completes(
    make_backend: Callable[..., EngineBackend],
) -> None:
    async with make_backend(config=NO_BACKOFF) as backend:
        adapter, probe = await make_adapter(backend), Probe()
        job_id = await adapter.enqueue(T, Flaky(name="api", failures=2))
        async with worker(adapter, probe, tenants=[T]):
            await until_status(backend, T, job_id, JobStatus.COMPLETED)
        assert await event_types(backend, T, job_id) == [
            "enqueued",
            "leased",
            "failed",
            "leased",
            "failed",
            "leased",
            "completed",
        ]
        assert (await backend.get_job(T, job_id)).attempts == 3


@pytest.mark.parametrize(
    "message",
    [
        JobMessage(job_type="flaky", payload_bytes=b'{"name": "x", "retryable": false}'),
        JobMessage(job_type="no-such-type", payload_bytes=b"{}"),
        JobMessage(job_type="echo", payload_bytes=b'{"text": 42}'),
        JobMessage(job_type="echo", payload_bytes=b"not json"),
    ],
    ids=["job-error-not-retryable", "unknown-type", "payload-wrong-type", "payload-not-json"],
)
async def test_permanent_failures_fail_at_once(backend: EngineBackend, message: JobMessage) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    job_id = await backend.enqueue(T, message)
    # No deploy grace: a job no code here can run fails at once too.
    async with worker(adapter, probe, tenants=[T], deploy_grace=timedelta(0)):
        await until_status(backend, T, job_id, JobStatus.FAILED)
    job = await backend.get_job(T, job_id)
    assert job.attempts == 1
    assert job.last_error


async def test_unexpected_exception_is_a_retryable_failure_with_its_traceback(
    make_backend: Callable[..., EngineBackend],
) -> None:
    async with make_backend(config=NO_BACKOFF) as backend:
        adapter, probe = await make_adapter(backend), Probe()
        job_id = await adapter.enqueue(T, Crashes(name="c"), max_retries=1)
        async with worker(adapter, probe, tenants=[T]):
            await until_status(backend, T, job_id, JobStatus.FAILED)
        job = await backend.get_job(T, job_id)
        assert probe.runs["c"] == 2  # retried once, then out of retries
        assert job.last_error is not None
        assert job.last_error.startswith("ZeroDivisionError")
        assert "in execute" in job.last_error


async def test_job_over_its_class_timeout_is_cancelled_and_failed(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    job_id = await adapter.enqueue(T, Slow(name="s"), max_retries=0)
    async with worker(adapter, probe, tenants=[T]):
        await until_status(backend, T, job_id, JobStatus.FAILED)
    assert probe.cancelled == ["s"]
    assert "timed out" in ((await backend.get_job(T, job_id)).last_error or "")


async def test_worker_default_timeout_counts_as_a_retryable_attempt(
    make_backend: Callable[..., EngineBackend],
) -> None:
    async with make_backend(config=NO_BACKOFF) as backend:
        adapter, probe = await make_adapter(backend), Probe()
        job_id = await adapter.enqueue(T, Blocks(name="b"), max_retries=1)
        async with worker(adapter, probe, tenants=[T], timeout=timedelta(milliseconds=30)):
            await until_status(backend, T, job_id, JobStatus.FAILED)
        assert probe.cancelled == ["b", "b"]
        assert (await backend.get_job(T, job_id)).attempts == 2


async def test_cancel_in_process_cancels_the_running_task_at_once(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    job_id = await adapter.enqueue(T, Blocks(name="b"))
    # Heartbeats far apart: only the in-process notification can stop the job.
    async with worker(adapter, probe, tenants=[T], heartbeat_interval=timedelta(hours=1)) as w:
        await probe.wait_started("b")
        assert await adapter.cancel_job(T, job_id) is JobStatus.CANCELED

        async def stopped() -> bool:
            return probe.cancelled == ["b"] and w.running == 0

        await until(stopped)
    assert await event_types(backend, T, job_id) == ["enqueued", "leased", "canceled"]


async def test_cancel_seen_by_heartbeat_cancels_the_running_task(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    job_id = await adapter.enqueue(T, Blocks(name="b"))
    options = {"heartbeat_interval": timedelta(milliseconds=10), "fast_cancel": False}
    async with worker(adapter, probe, tenants=[T], **options) as w:
        await probe.wait_started("b")
        await adapter.cancel_job(T, job_id)

        async def stopped() -> bool:
            return probe.cancelled == ["b"] and w.running == 0

        await until(stopped)
        probe.gate.set()
    types = await event_types(backend, T, job_id)
    assert types[-1] == "canceled"
    assert "completed" not in types


async def test_lost_lease_cancels_the_task_and_the_job_runs_again(
    make_backend: Callable[..., EngineBackend], clock: FakeClock
) -> None:
    async with make_backend(config=NO_BACKOFF) as backend:
        adapter, probe = await make_adapter(backend), Probe()
        job_id = await adapter.enqueue(T, Blocks(name="b"))
        options = {"heartbeat_interval": timedelta(milliseconds=10), "fast_cancel": False}
        async with worker(
            adapter, probe, tenants=[T], lease_duration=timedelta(minutes=1), **options
        ):
            await probe.wait_started("b")
            clock.advance(timedelta(minutes=2))
            await backend.reap_expired()  # or the worker's own dequeue reclaims it

            async def rerun() -> bool:
                return probe.cancelled == ["b"] and probe.runs["b"] == 2

            await until(rerun)
            probe.gate.set()
            await until_status(backend, T, job_id, JobStatus.COMPLETED)
        types = await event_types(backend, T, job_id)
        assert types.count("expired") == 1
        assert types.count("completed") == 1


async def test_stop_lets_running_jobs_finish_within_the_grace_period(
    backend: EngineBackend,
) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    first = await adapter.enqueue(T, Blocks(name="first"))
    second = await adapter.enqueue(T, Echo(text="second"))
    w = worker(adapter, probe, tenants=[T], concurrency=1)
    run = asyncio.create_task(w.run())
    await probe.wait_started("first")
    w.request_stop(timedelta(minutes=1))
    probe.gate.set()
    await within(run)
    assert await backend.get_status(T, first) is JobStatus.COMPLETED
    assert await backend.get_status(T, second) is JobStatus.ENQUEUED  # no leasing after stop


async def test_stop_after_grace_releases_unfinished_leases(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    job_id = await adapter.enqueue(T, Blocks(name="b"))
    w = worker(adapter, probe, tenants=[T])
    run = asyncio.create_task(w.run())
    await probe.wait_started("b")
    old_token = (await backend.get_job(T, job_id)).lease_token
    await within(w.stop(grace=timedelta(0)))
    assert run.done()
    assert probe.cancelled == ["b"]
    assert await event_types(backend, T, job_id) == ["enqueued", "leased", "released"]
    job = await backend.get_job(T, job_id)
    assert job.status is JobStatus.ENQUEUED
    lease = await backend.dequeue(T, ["default"])
    assert lease is not None and lease.lease_token > old_token
    assert lease.attempt == 1  # a released lease is not a failed attempt


async def test_a_big_backlog_does_not_delay_another_tenants_job(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    big, small = QueueCtx("big"), QueueCtx("small")
    await adapter.enqueue_many(big, [Echo(text=f"big{i}") for i in range(10_000)])
    lone = await adapter.enqueue(small, Echo(text="lone"))
    async with worker(adapter, probe, concurrency=2):
        await until_status(backend, small, lone, JobStatus.COMPLETED)
    leased = [e for e in await backend.read_events() if isinstance(e, Leased)]
    position = next(i for i, e in enumerate(leased) if e.tenant_id == "small")
    assert position <= 2, f"the lone job waited behind {position} jobs of the big tenant"


async def test_named_tenants_take_turns(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    a, b = QueueCtx("a"), QueueCtx("b")
    await adapter.enqueue_many(a, [Echo(text=f"a{i}") for i in range(5)])
    last = (await adapter.enqueue_many(b, [Echo(text=f"b{i}") for i in range(3)]))[-1]
    async with worker(adapter, probe, tenants=[a, b], concurrency=1):
        await until_status(backend, b, last, JobStatus.COMPLETED)
    leased = [e.tenant_id for e in await backend.read_events() if isinstance(e, Leased)]
    assert leased[:6] == ["a", "b", "a", "b", "a", "b"]


async def test_per_tenant_concurrency_limit_holds(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    a, b = QueueCtx("a"), QueueCtx("b")
    ids_a = await adapter.enqueue_many(a, [Counted(name=f"a{i}") for i in range(20)])
    ids_b = await adapter.enqueue_many(b, [Echo(text=f"b{i}") for i in range(3)])
    async with worker(adapter, probe, tenants=[a, b], concurrency=4, tenant_concurrency=1):
        for job_id in ids_a:
            await until_status(backend, a, job_id, JobStatus.COMPLETED)
        for b_id in ids_b:
            await until_status(backend, b, b_id, JobStatus.COMPLETED)
    assert probe.most_running == 1


async def test_scheduled_job_runs_when_its_time_comes(
    backend: EngineBackend, clock: FakeClock
) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    run_at = clock() + timedelta(hours=1)
    job_id = await adapter.enqueue(T, Echo(text="later"), run_at=run_at)
    async with worker(adapter, probe, tenants=[T]) as w:
        await asyncio.sleep(0.02)  # let the worker go idle; it must not run the job early
        assert await backend.get_status(T, job_id) is JobStatus.ENQUEUED
        clock.advance(timedelta(hours=1))
        w.wake()
        await until_status(backend, T, job_id, JobStatus.COMPLETED)
    leased = [e for e in await backend.history(T, job_id) if isinstance(e, Leased)]
    assert leased[0].at >= run_at


async def test_reaper_returns_leases_of_dead_workers(
    make_backend: Callable[..., EngineBackend], clock: FakeClock
) -> None:
    config = QueueConfig(reaper_interval=timedelta(milliseconds=10))
    async with make_backend(config=config) as backend:
        adapter, probe = await make_adapter(backend), Probe()
        elsewhere = QueueCtx("elsewhere")
        job_id = await adapter.enqueue(elsewhere, Echo(text="orphan"))
        assert await backend.dequeue(elsewhere, ["default"], lease_duration=timedelta(seconds=30))
        clock.advance(timedelta(minutes=1))
        # The worker serves another tenant, so only its reaper can expire this lease.
        async with worker(adapter, probe, tenants=[T]):
            await until_status(backend, elsewhere, job_id, JobStatus.ENQUEUED)
        assert (await event_types(backend, elsewhere, job_id))[-1] == "expired"


async def test_retry_job_brings_a_dead_letter_back(backend: EngineBackend) -> None:
    adapter, probe = await make_adapter(backend), Probe()
    job_id = await adapter.enqueue(T, Flaky(name="f", failures=1, retryable=False))
    async with worker(adapter, probe, tenants=[T]):
        await until_status(backend, T, job_id, JobStatus.FAILED)
        assert await adapter.retry_job(T, job_id) is JobStatus.ENQUEUED
        await until_status(backend, T, job_id, JobStatus.COMPLETED)
    assert await event_types(backend, T, job_id) == [
        "enqueued",
        "leased",
        "failed",
        "requeued",
        "leased",
        "completed",
    ]


async def test_invalid_worker_options_are_refused(backend: EngineBackend) -> None:
    adapter = await make_adapter(backend)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"concurrency": 0}, "concurrency"),
        ({"tenant_concurrency": -1}, "tenant_concurrency"),
        ({"tenants": "tenant-a"}, "tenants"),
        ({"tenants": []}, "tenants"),
        ({"queues": []}, "queues"),
        ({"lease_duration": timedelta(0)}, "lease_duration"),
        ({"timeout": timedelta(seconds=-1)}, "timeout"),
    ]
    for options, field in cases:
        with pytest.raises(InvalidInput) as raised:
            Worker(adapter, **options)
        assert raised.value.field == field


async def test_a_worker_runs_once(backend: EngineBackend) -> None:
    w = worker(await make_adapter(backend), Probe(), tenants=[T])
    await w.stop()
    await within(w.run())  # stopped before it started: returns at once
    with pytest.raises(InvalidInput):
        await w.run()
