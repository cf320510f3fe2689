"""The application around the worker, on every backend (fake clock): the job's run,
per-tenant contexts, synchronous jobs, the loop watchdog, the cancel check, deploy
grace, results and function jobs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from dogqueue import (
    FakeClock,
    Job,
    JobCanceled,
    JobError,
    JobMessage,
    JobNotFound,
    JobStatus,
    QueueAdapter,
    QueueConfig,
    QueueCtx,
    SyncJob,
    Worker,
    current_run,
    job,
)
from dogqueue.audit.explain import explain
from dogqueue.backend.base import EngineBackend
from dogqueue.client.results import JobFailed, ResultTimeout
from dogqueue.core.events import Heartbeat
from dogqueue.observability.prometheus import render
from dogqueue.observability.reader import MetricsReader
from tests.runtime.helpers import event_types, until, until_status, within

T = QueueCtx("tenant-a")
NO_BACKOFF = QueueConfig(base_retry_backoff=timedelta(0))


@dataclass
class Seen:
    """What the jobs saw of their runs."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)


class Inspect(Job[Seen, int]):
    """Records its run; fails until its third attempt."""

    JOB_TYPE = "inspect"

    async def execute(self, ctx: Seen) -> int:
        run = current_run()
        ctx.runs.append(
            {
                "tenant": run.tenant_id,
                "job_id": run.job_id,
                "attempt": run.attempt,
                "max_attempts": run.max_attempts,
                "deadline": run.lease_deadline,
                "token": run.token,
            }
        )
        if run.attempt < 3:
            raise JobError(f"attempt {run.attempt} fails")
        return run.attempt


class Progress(Job[Seen, str]):
    """Reports progress and extends its lease."""

    JOB_TYPE = "progress"

    async def execute(self, ctx: Seen) -> str:
        run = current_run()
        before = run.lease_deadline
        await run.report_progress(0.5, "half way")
        deadline = await run.extend_lease(timedelta(hours=2))
        ctx.runs.append({"before": before, "after": deadline, "progress": run.progress})
        return "done"


class Blocking(SyncJob[Seen, str]):
    """A synchronous job that blocks its thread until released."""

    JOB_TYPE = "blocking"
    name: str

    def execute(self, ctx: Seen) -> str:
        ctx.threads.append(threading.current_thread().name)
        ctx.runs.append({"attempt": current_run().attempt})
        ctx.started.set()
        ctx.release.wait(timeout=30)
        current_run().report_progress_blocking(1.0, "finished")
        return self.name.upper()


class Hog(Job[Seen, None]):
    """Blocks the event loop (the mistake the watchdog reports)."""

    JOB_TYPE = "hog"

    async def execute(self, ctx: Seen) -> None:
        time.sleep(0.3)  # noqa: ASYNC251 (the point of the test)


class Waits(Job[Seen, str]):
    """Waits until cancelled."""

    JOB_TYPE = "waits"

    async def execute(self, ctx: Seen) -> str:
        ctx.started.set()
        await asyncio.Event().wait()
        return "never"


class Fails(Job[Seen, int]):
    """Fails for good."""

    JOB_TYPE = "fails"

    async def execute(self, ctx: Seen) -> int:
        raise JobError("the card was declined\nsecond line", retryable=False)


@job
async def add(ctx: Seen, a: int, b: int = 1) -> int:
    """An async function job."""
    return a + b


@job(job_type="shout", max_retries=0)
def shout(ctx: Seen, text: str) -> list[str]:
    """A synchronous function job."""
    ctx.threads.append(threading.current_thread().name)
    return [text.upper(), current_run().job_type]


async def make_adapter(backend: EngineBackend) -> QueueAdapter[Seen]:
    adapter: QueueAdapter[Seen] = QueueAdapter(backend)
    for job_class in (Inspect, Progress, Blocking, Hog, Waits, Fails):
        await adapter.register_job(job_class)
    await adapter.register_job(add)
    await adapter.register_job(shout)
    return adapter


def worker(adapter: QueueAdapter[Seen], seen: Seen | None = None, **options: Any) -> Worker[Seen]:
    options.setdefault("handle_signals", False)
    if "context_factory" not in options:
        options["context"] = seen
    return Worker(adapter, tenants=[T], **options)


async def test_a_job_reads_its_run_and_its_attempt(
    make_backend: Any,
) -> None:
    async with make_backend(config=NO_BACKOFF) as backend:
        adapter, seen = await make_adapter(backend), Seen()
        handle = await adapter.enqueue(T, Inspect(), max_retries=4)
        async with worker(adapter, seen):
            assert await within_result(adapter.wait_result(T, handle)) == 3
        assert [r["attempt"] for r in seen.runs] == [1, 2, 3]
        info = await backend.get_job(T, handle)
        for run in seen.runs:
            assert run["tenant"] == "tenant-a" and run["job_id"] == handle
            assert run["max_attempts"] == 5
            assert isinstance(run["deadline"], datetime)
        assert seen.runs[-1]["token"] == info.lease_token


async def test_progress_and_lease_extension_are_recorded(
    backend: EngineBackend, clock: FakeClock
) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    handle = await adapter.enqueue(T, Progress())
    async with worker(adapter, seen, heartbeat_interval=timedelta(hours=1)):
        assert await within_result(adapter.wait_result(T, handle)) == "done"
    (run,) = seen.runs
    assert run["progress"] == (0.5, "half way")
    assert run["after"] == clock() + timedelta(hours=2)
    assert await event_types(backend, T, handle) == [
        "enqueued",
        "leased",
        "heartbeat",
        "heartbeat",
        "completed",
    ]
    beats = [e for e in await backend.history(T, handle) if isinstance(e, Heartbeat)]
    assert [(e.progress, e.progress_message) for e in beats] == [(0.5, "half way"), (None, None)]


def test_current_run_outside_a_job_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="inside a job"):
        current_run()


async def test_per_tenant_contexts_and_hooks(backend: EngineBackend) -> None:
    adapter = await make_adapter(backend)
    made: list[str] = []
    hooks: list[str] = []

    async def context_for(ctx: QueueCtx) -> Seen:
        made.append(ctx.tenant_id)
        return Seen()

    async def started(w: Worker[Seen]) -> None:
        hooks.append("startup")

    async def stopped(w: Worker[Seen]) -> None:
        hooks.append(f"shutdown {sorted(w.tenant_contexts)}")

    handles = [await adapter.enqueue(T, add(a=i)) for i in range(3)]
    async with worker(
        adapter, context_factory=context_for, on_startup=started, on_shutdown=stopped
    ):
        for handle in handles:
            await within_result(adapter.wait_result(T, handle))
    assert made == ["tenant-a"]
    assert hooks == ["startup", "shutdown ['tenant-a']"]


async def test_a_sync_job_runs_in_a_pool_thread_and_the_loop_keeps_heartbeating(
    backend: EngineBackend,
) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    handle = await adapter.enqueue(T, Blocking(name="b"))
    async with worker(adapter, seen, heartbeat_interval=timedelta(milliseconds=5)):
        await within(asyncio.to_thread(seen.started.wait, 30))

        async def heartbeats() -> bool:
            return (await event_types(backend, T, handle)).count("heartbeat") >= 3

        await until(heartbeats)  # the loop runs while the job blocks its thread
        seen.release.set()
        assert await within_result(adapter.wait_result(T, handle)) == "B"
    assert seen.threads[0].startswith("dogqueue-job")
    assert seen.runs == [{"attempt": 1}]


async def test_a_job_blocking_the_loop_is_named_in_a_warning(
    backend: EngineBackend, caplog: pytest.LogCaptureFixture
) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    caplog.set_level(logging.WARNING, "dogqueue.worker")
    handle = await adapter.enqueue(T, Hog())
    async with worker(adapter, seen, blocked_loop_warning=timedelta(milliseconds=50)):
        await within_result(adapter.wait_result(T, handle))
    warnings = [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert warnings and f"tenant-a/{handle} hog#1" in warnings[0]


async def test_the_cancel_check_stops_a_job_canceled_elsewhere(backend: EngineBackend) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    handle = await adapter.enqueue(T, Waits())
    # No in-process notification, heartbeats an hour apart: only the check can see it.
    options: dict[str, Any] = {
        "fast_cancel": False,
        "heartbeat_interval": timedelta(hours=1),
        "cancel_check_interval": timedelta(milliseconds=10),
    }
    async with worker(adapter, seen, **options) as w:
        await within(asyncio.to_thread(seen.started.wait, 30))
        await backend.cancel_job(T, handle)

        async def stopped() -> bool:
            return w.running == 0

        await until(stopped)
    assert await event_types(backend, T, handle) == ["enqueued", "leased", "canceled"]


@pytest.mark.parametrize(
    "message",
    [
        JobMessage(job_type="added-later", payload_bytes=b"{}"),
        JobMessage(job_type="add", payload_bytes=b'{"a": "not an int"}'),
    ],
    ids=["unknown-type", "payload-does-not-decode"],
)
async def test_a_job_no_code_here_can_run_is_given_back_then_failed_after_the_grace(
    backend: EngineBackend, clock: FakeClock, message: JobMessage
) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    job_id = await backend.enqueue(T, message)
    grace = {
        "deploy_grace": timedelta(minutes=10),
        "deploy_hold": timedelta(milliseconds=5),
        "lease_duration": timedelta(hours=1),  # the clock jump leaves the lease valid
    }
    async with worker(adapter, seen, **grace) as w:

        async def given_back() -> bool:
            return (await event_types(backend, T, job_id)).count("released") >= 2

        await until(given_back)
        assert await backend.get_status(T, job_id) is not JobStatus.FAILED
        # explain names the hold, from the log: why, and until when.
        held = await backend.get_job(T, job_id)
        told = str(explain(held, await backend.history(T, job_id), clock(), 0))
        assert "no worker can run this type here (" in told, told
        until_text = (held.created_at + timedelta(minutes=10)).isoformat(
            sep=" ", timespec="seconds"
        )
        assert f"held until {until_text}, then it fails for good" in told, told
        clock.advance(timedelta(minutes=11))
        w.wake()
        await until_status(backend, T, job_id, JobStatus.FAILED)
    info = await backend.get_job(T, job_id)
    assert info.last_error is not None and "deploy grace period" in info.last_error
    assert w.counters["not_runnable_released"] >= 2
    assert w.counters["not_runnable_failed"] == 1
    # The same counts as Prometheus series (what `dogqueue worker --metrics-port` serves).
    text = render(await MetricsReader(backend).snapshot(), worker_counters=w.counters).decode()
    series = "dogqueue_worker_not_runnable_jobs_total"
    assert f'{series}{{outcome="released"}} {float(w.counters["not_runnable_released"])}' in text
    assert f'{series}{{outcome="failed"}} 1.0' in text


async def test_wait_result_raises_typed_errors(backend: EngineBackend) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    failing = await adapter.enqueue(T, Fails())
    waiting = await adapter.enqueue(T, Waits())
    never_run = await adapter.enqueue(T, add(a=1), queue="nobody")
    async with worker(adapter, seen):
        with pytest.raises(JobFailed, match=r"the card was declined$") as failed:
            await within_result(adapter.wait_result(T, failing))
        assert failed.value.error is not None and "second line" in failed.value.error
        await within(asyncio.to_thread(seen.started.wait, 30))
        waiter = asyncio.create_task(adapter.wait_result(T, waiting))
        await adapter.cancel_job(T, waiting)
        with pytest.raises(JobCanceled):
            await within_result(waiter)
        with pytest.raises(ResultTimeout, match="still enqueued"):
            await adapter.wait_result(T, never_run, timeout=0)


async def test_a_handle_from_a_bare_id_waits_for_the_result(backend: EngineBackend) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    job_id = str(await adapter.enqueue(T, add(a=2, b=5)))  # as it comes back in a URL
    handle = await adapter.handle(T, job_id)
    assert (
        handle == job_id and handle.job_type == (await adapter.get_job(T, job_id)).message.job_type
    )
    async with worker(adapter, seen):
        assert await within_result(adapter.wait_result(T, handle)) == 7
    with pytest.raises(JobNotFound):
        await adapter.handle(QueueCtx("tenant-b"), job_id)


async def test_function_jobs_run_async_and_sync_with_their_declared_results(
    backend: EngineBackend,
) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    total = await adapter.enqueue(T, add(2, b=3))
    shouted = await adapter.enqueue(T, shout("hi"))
    async with worker(adapter, seen):
        assert await within_result(adapter.wait_result(T, total)) == 5
        assert await within_result(adapter.wait_result(T, shouted)) == ["HI", "shout"]
    assert seen.threads[0].startswith("dogqueue-job")
    assert (await backend.get_job(T, shouted)).message.max_retries == 0
    assert add.job_class.JOB_TYPE == "add"


async def within_result(awaitable: Any) -> Any:
    """Await a result, failing the test on a hang."""
    return await asyncio.wait_for(awaitable, 20)


async def test_a_worker_of_every_queue_runs_jobs_of_queues_made_after_it_started(
    backend: EngineBackend,
) -> None:
    adapter, seen = await make_adapter(backend), Seen()
    first = await adapter.enqueue(T, add(a=1), queue="reports")
    async with Worker(adapter, context=seen, queues="*", handle_signals=False) as w:
        assert await within_result(adapter.wait_result(T, first)) == 2
        later = await adapter.enqueue(T, add(a=2), queue="emails")
        assert await within_result(adapter.wait_result(T, later)) == 3
        assert set(w.queues) == {"reports", "emails"}
