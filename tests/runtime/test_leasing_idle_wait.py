"""The lease loop's idle wait: it ends when `wake` is set, when the queue changes, and
when the backend's wait fails (and nothing is logged of that failure)."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta
from typing import Any

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.memory import MemoryBackend
from dogqueue.core.errors import StorageError
from dogqueue.worker.deploy import DeployHold
from dogqueue.worker.leasing import Leasing
from dogqueue.worker.settings import WorkerSettings
from tests.runtime.helpers import within

#: Far longer than any test waits: an idle wait that ran its course would hang the test.
FOREVER = 3600.0


def _leasing(backend: MemoryBackend) -> Leasing:
    settings = WorkerSettings(lease_duration=timedelta(seconds=30))
    deploy = DeployHold(backend, timedelta(0), 1.0)
    return Leasing(backend, settings, deploy, lambda ctx, lease: None, lambda: 0)


async def test_setting_wake_ends_the_idle_wait() -> None:
    async with MemoryBackend() as backend:
        leasing = _leasing(backend)
        waiting = asyncio.create_task(leasing._idle_wait(FOREVER))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        leasing.wake.set()
        await within(waiting)
        assert leasing.wake.idle_wait is None


async def test_a_change_of_the_queue_ends_the_idle_wait() -> None:
    async with MemoryBackend() as backend:
        waiting = asyncio.create_task(_leasing(backend)._idle_wait(FOREVER))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await backend.enqueue(QueueCtx("t"), JobMessage(job_type="x", payload_bytes=b"{}"))
        await within(waiting)


class FailingWaits(MemoryBackend):
    async def wait_for_change(self, max_wait: float) -> None:
        raise StorageError("the wait failed")


async def test_a_failed_wait_ends_the_idle_wait_and_is_not_reported() -> None:
    unhandled: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unhandled.append(context))
    async with FailingWaits() as backend:
        await within(_leasing(backend)._idle_wait(FOREVER))
    await asyncio.sleep(0)
    gc.collect()  # an unretrieved task exception is reported when the task is collected
    assert unhandled == []


class CountedDequeues(MemoryBackend):
    dequeues = 0

    async def dequeue_many(self, *args: Any, **kwargs: Any) -> Any:
        self.dequeues += 1
        return await super().dequeue_many(*args, **kwargs)


async def test_a_tenant_whose_dequeue_came_back_short_is_not_asked_again_that_round() -> None:
    async with CountedDequeues() as backend:
        ctx = QueueCtx("t")
        await backend.enqueue(ctx, JobMessage(job_type="x", payload_bytes=b"{}"))
        started: list[str] = []
        settings = WorkerSettings(lease_duration=timedelta(seconds=30), concurrency=8)
        deploy = DeployHold(backend, timedelta(0), 1.0)
        leasing = Leasing(
            backend, settings, deploy, lambda _, lease: started.append(lease.job_id), lambda: 0
        )
        assert await leasing._lease_round(8) == 1  # 8 free slots, 1 job: the queue ran dry
        assert len(started) == 1
        assert backend.dequeues == 1
