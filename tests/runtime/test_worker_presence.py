"""A worker announces itself on every backend: at start, on its timer (or `wake()`) with
its running jobs, and when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from dogqueue import FakeClock, Job, JobStatus, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.base import EngineBackend
from dogqueue.core.workers import GONE_AFTER, WorkerState, worker_state
from tests.runtime.helpers import until, until_status


class Sleeps(Job[None, None]):
    JOB_TYPE = "sleeps"

    async def execute(self, ctx: None) -> None:
        await asyncio.sleep(3600)


async def test_a_worker_announces_itself_while_it_runs_and_when_it_stops(
    make_backend: Callable[..., EngineBackend], clock: FakeClock
) -> None:
    async with make_backend() as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(Sleeps)
        ctx = QueueCtx("acme")
        worker: Worker[None] = Worker(
            adapter, tenants=[ctx], queues=["default", "mail"], concurrency=3, handle_signals=False
        )
        async with worker:

            async def announced() -> bool:
                return worker.presence.concurrency == 3

            await until(announced)
            (live,) = await backend.read_workers(seen_since=clock())
            served = (live.queues, live.tenants, live.concurrency)
            assert served == (("default", "mail"), ("acme",), 3)
            assert live.running == 0 and live.stopped_at is None
            assert worker_state(live, clock()) is WorkerState.LIVE
            quiet = clock() + GONE_AFTER + timedelta(seconds=1)
            assert worker_state(live, quiet) is WorkerState.GONE

            job_id = await adapter.enqueue(ctx, Sleeps())
            await until_status(backend, ctx, job_id, JobStatus.LEASED)
            clock.advance(timedelta(seconds=10))
            worker.wake()

            async def refreshed() -> bool:
                return worker.presence.last_seen == clock()

            await until(refreshed)
            (busy,) = await backend.read_workers(seen_since=clock())
            assert busy.worker_id == live.worker_id and busy.running == 1
            await worker.stop(timedelta(0))
        (stopped,) = await backend.read_workers(seen_since=clock())
        assert stopped.worker_id == live.worker_id and stopped.stopped_at == clock()
        assert worker_state(stopped, clock()) is WorkerState.STOPPED
