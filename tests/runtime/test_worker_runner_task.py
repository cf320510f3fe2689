"""A job's `execute` runs inside its runner task: the worker's own cancellations of that
task (cancel, timeout, shutdown) are taken back once the job has stopped, and one from
outside is not mistaken for them. One timer starts the heartbeats of every job."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dogqueue import Job, JobStatus, QueueAdapter, QueueCtx, Worker, current_run
from dogqueue.backend.base import EngineBackend
from dogqueue.client.run import JobRun
from dogqueue.core.job import LeasedJob
from dogqueue.worker.running import RunningJob
from tests.runtime.helpers import event_types, until, until_status, within

T = QueueCtx("tenant-a")


@dataclass
class Box:
    """What the test jobs reach: the adapter, a gate, and what they saw."""

    adapter: QueueAdapter[Any] | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: list[str] = field(default_factory=list)


class CancelsItself(Job[Box, str]):
    """Cancels its own job through the adapter, then returns without awaiting again."""

    JOB_TYPE = "cancels_itself"

    async def execute(self, ctx: Box) -> str:
        assert ctx.adapter is not None
        await ctx.adapter.cancel_job(T, current_run().job_id)
        return "done anyway"


class SwallowsCancel(Job[Box, str]):
    """Catches the cancellation of its timeout and returns a result regardless."""

    JOB_TYPE = "swallows_cancel"
    TIMEOUT = timedelta(milliseconds=20)

    async def execute(self, ctx: Box) -> str:
        try:
            await ctx.gate.wait()
        except asyncio.CancelledError:
            ctx.cancelled.append("swallowed")
        return "late"


class Waits(Job[Box, str]):
    """Waits at the gate."""

    JOB_TYPE = "waits"

    async def execute(self, ctx: Box) -> str:
        ctx.started.set()
        await ctx.gate.wait()
        return "passed"


class Quick(Job[Box, str]):
    """Returns at once."""

    JOB_TYPE = "quick"

    async def execute(self, ctx: Box) -> str:
        return "quick"


class RaisesCancelled(Job[Box, str]):
    """Raises CancelledError itself, with nobody having cancelled it."""

    JOB_TYPE = "raises_cancelled"

    async def execute(self, ctx: Box) -> str:
        raise asyncio.CancelledError


class RecordingWorker(Worker[Box]):
    """A Worker that keeps the runner task of every job it starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runners: list[asyncio.Task[None]] = []

    def _start(self, ctx: QueueCtx, lease: LeasedJob) -> None:
        super()._start(ctx, lease)
        job = self._jobs[(ctx.tenant_id, lease.job_id, lease.lease_token)]
        assert job.runner is not None
        self.runners.append(job.runner)


async def setup(backend: EngineBackend) -> tuple[QueueAdapter[Box], Box]:
    adapter: QueueAdapter[Box] = QueueAdapter(backend)
    for job_class in (CancelsItself, SwallowsCancel, Waits, Quick, RaisesCancelled):
        await adapter.register_job(job_class)
    return adapter, Box(adapter=adapter)


async def test_a_job_that_cancels_itself_leaves_no_cancellation_pending(
    backend: EngineBackend,
) -> None:
    adapter, box = await setup(backend)
    job_id = await adapter.enqueue(T, CancelsItself())
    worker = RecordingWorker(adapter, context=box, tenants=[T], handle_signals=False)
    async with worker:
        await until_status(backend, T, job_id, JobStatus.CANCELED)

        async def finished() -> bool:
            return worker.running == 0

        await until(finished)
        await within(asyncio.gather(*worker.runners))
    assert [runner.cancelled() for runner in worker.runners] == [False]
    assert [runner.cancelling() for runner in worker.runners] == [0]


async def test_a_finished_job_is_freed_without_the_cycle_collector(
    backend: EngineBackend,
) -> None:
    # Its RunningJob, JobRun (in the runner's context) and runner task referred to each
    # other; the collector had to find every finished job.
    adapter, box = await setup(backend)
    job_ids = {await adapter.enqueue(T, Quick()) for _ in range(3)}
    runners: list[weakref.ref[asyncio.Task[None]]] = []

    class WeakRecordingWorker(Worker[Box]):
        def _start(self, ctx: QueueCtx, lease: LeasedJob) -> None:
            super()._start(ctx, lease)
            runner = self._jobs[(ctx.tenant_id, lease.job_id, lease.lease_token)].runner
            assert runner is not None
            runners.append(weakref.ref(runner))

    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        worker = WeakRecordingWorker(adapter, context=box, tenants=[T], handle_signals=False)
        async with worker:
            for job_id in job_ids:
                await until_status(backend, T, job_id, JobStatus.COMPLETED)

            async def runners_freed() -> bool:
                return len(runners) == 3 and all(ref() is None for ref in runners)

            await until(runners_freed)
        held = [
            obj
            for obj in gc.get_objects()
            if isinstance(obj, RunningJob) and obj.lease.job_id in job_ids
        ]
        assert held == []
    finally:
        if was_enabled:
            gc.enable()


async def test_a_job_that_swallows_its_timeout_still_times_out(backend: EngineBackend) -> None:
    adapter, box = await setup(backend)
    job_id = await adapter.enqueue(T, SwallowsCancel(), max_retries=0)
    worker = RecordingWorker(adapter, context=box, tenants=[T], handle_signals=False)
    async with worker:
        await until_status(backend, T, job_id, JobStatus.FAILED)
        await within(asyncio.gather(*worker.runners))
    assert box.cancelled == ["swallowed"]
    assert "timed out" in ((await backend.get_job(T, job_id)).last_error or "")
    assert [runner.cancelling() for runner in worker.runners] == [0]


async def test_a_job_raising_cancelled_error_itself_fails_that_attempt(
    backend: EngineBackend,
) -> None:
    adapter, box = await setup(backend)
    job_id = await adapter.enqueue(T, RaisesCancelled(), max_retries=0)
    worker = RecordingWorker(adapter, context=box, tenants=[T], handle_signals=False)
    async with worker:
        await until_status(backend, T, job_id, JobStatus.FAILED)
        await within(asyncio.gather(*worker.runners))
    assert (await backend.get_job(T, job_id)).last_error == "cancelled from inside the job"
    assert [runner.cancelled() for runner in worker.runners] == [False]


async def test_a_runner_cancelled_from_outside_stays_cancelled(backend: EngineBackend) -> None:
    adapter, box = await setup(backend)
    job_id = await adapter.enqueue(T, Waits())
    worker = RecordingWorker(adapter, context=box, tenants=[T], handle_signals=False)
    async with worker:
        await within(box.started.wait())
        [runner] = worker.runners
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert runner.cancelled()
        assert worker.running == 0
        # Not acknowledged as a failure or a stop: the lease stays until it expires.
        assert await backend.get_status(T, job_id) is JobStatus.LEASED


async def test_stop_requested_is_set_whether_read_before_or_after_the_stop(
    backend: EngineBackend,
) -> None:
    adapter, _ = await setup(backend)
    await adapter.enqueue(T, Waits())
    await adapter.enqueue(T, Waits())
    first, second = await backend.dequeue_many(T, ["default"], 2)
    read_first = JobRun(backend, T, first, timedelta(minutes=1))
    event = read_first.stop_requested
    assert not event.is_set()
    read_first.request_stop()
    assert event.is_set() and read_first.stop_requested is event

    read_after = JobRun(backend, T, second, timedelta(minutes=1))
    read_after.request_stop()
    assert read_after.stop_requested.is_set()

    # Read for the first time from a job's thread and from the loop at once: one event.
    racing = JobRun(backend, T, second, timedelta(minutes=1))
    seen: list[threading.Event] = []
    threads = [threading.Thread(target=lambda: seen.append(racing.stop_requested))]
    threads[0].start()
    seen.append(racing.stop_requested)
    threads[0].join()
    racing.request_stop()
    assert seen[0] is seen[1] and seen[0].is_set()


async def test_a_job_started_after_a_finished_one_still_gets_its_heartbeat(
    backend: EngineBackend,
) -> None:
    # The shared timer is set for the first job; it has finished when the timer fires,
    # and the timer must be set again for the job that started later.
    adapter, box = await setup(backend)
    interval = timedelta(milliseconds=60)
    worker = RecordingWorker(
        adapter, context=box, tenants=[T], handle_signals=False, heartbeat_interval=interval
    )
    async with worker:
        quick = await adapter.enqueue(T, Quick())
        await until_status(backend, T, quick, JobStatus.COMPLETED)
        await asyncio.sleep(interval.total_seconds() / 2)
        waits = await adapter.enqueue(T, Waits())
        await within(box.started.wait())

        async def beaten_twice() -> bool:
            return (await event_types(backend, T, waits)).count("heartbeat") >= 2

        await until(beaten_twice)
        box.gate.set()
        await until_status(backend, T, waits, JobStatus.COMPLETED)
    assert "heartbeat" not in await event_types(backend, T, quick)
