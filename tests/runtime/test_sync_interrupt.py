"""A synchronous job the worker stops (canceled elsewhere, timed out) is interrupted in
its thread, and the thread runner never lets an interruption escape a finished job."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from dogqueue import JobInterrupted, JobStatus, QueueAdapter, QueueCtx, SyncJob, Worker
from dogqueue.backend.base import EngineBackend
from dogqueue.worker.threads import Interruptible, SyncJobThreads
from tests.runtime.helpers import event_types, until, until_status, within

T = QueueCtx("tenant-a")


@dataclass
class Spinning:
    """What the spinning jobs saw."""

    started: threading.Event = field(default_factory=threading.Event)
    interrupted: threading.Event = field(default_factory=threading.Event)
    swallowed: list[str] = field(default_factory=list)


class Spin(SyncJob[Spinning, int]):
    """Pure Python work that never ends by itself and swallows every Exception."""

    JOB_TYPE = "spin"

    def execute(self, ctx: Spinning) -> int:
        ctx.started.set()
        n = 0
        try:
            while True:
                try:
                    n += 1
                except Exception as error:  # job code that swallows errors
                    ctx.swallowed.append(repr(error))
        except JobInterrupted:
            ctx.interrupted.set()
            raise


class SlowSpin(Spin):
    JOB_TYPE = "slow-spin"
    TIMEOUT: ClassVar[timedelta | None] = timedelta(milliseconds=200)


def spin_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dogqueue-job")]


async def make_worker(backend: EngineBackend, seen: Spinning) -> Worker[Spinning]:
    adapter: QueueAdapter[Spinning] = QueueAdapter(backend)
    await adapter.register_job(Spin)
    await adapter.register_job(SlowSpin)
    return Worker(adapter, tenants=[T], context=seen, handle_signals=False)


async def test_a_sync_job_canceled_elsewhere_is_interrupted_in_its_thread(
    backend: EngineBackend,
) -> None:
    seen = Spinning()
    async with await make_worker(backend, seen) as worker:
        job_id = await worker.adapter.enqueue(T, Spin())
        await within(asyncio.to_thread(seen.started.wait, 30))
        await backend.cancel_job(T, job_id)
        await within(asyncio.to_thread(seen.interrupted.wait, 30))

        async def thread_gone() -> bool:
            return not spin_threads()

        await until(thread_gone)
    assert seen.swallowed == []  # `except Exception` did not catch it
    assert await event_types(backend, T, job_id) == ["enqueued", "leased", "canceled"]


async def test_a_sync_job_past_its_timeout_is_interrupted_and_the_attempt_fails(
    backend: EngineBackend,
) -> None:
    seen = Spinning()
    async with await make_worker(backend, seen) as worker:
        job_id = await worker.adapter.enqueue(T, SlowSpin(), max_retries=0)
        await until_status(backend, T, job_id, JobStatus.FAILED)
        await within(asyncio.to_thread(seen.interrupted.wait, 30))
    info = await backend.get_job(T, job_id)
    assert info.last_error is not None and "timed out" in info.last_error


@pytest.mark.parametrize("delay_loops", [0, 10, 100, 1000])
async def test_an_interruption_racing_the_end_of_a_job_never_escapes_it(delay_loops: int) -> None:
    """Interrupt each of many short jobs right as it returns: each outcome is either
    its result or JobInterrupted, and no thread dies of a stray exception."""
    stray: list[BaseException | None] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: stray.append(args.exc_value)
    try:
        threads = SyncJobThreads(4)
        outcomes: list[Any] = []

        async def one(i: int) -> None:
            guard = Interruptible()

            def work() -> int:
                for _ in range(delay_loops):
                    pass
                return i

            task = asyncio.create_task(threads.run(work, guard))
            await asyncio.sleep(0)
            guard.interrupt()
            try:
                outcomes.append(await task)
            except JobInterrupted:
                outcomes.append("interrupted")

        await asyncio.gather(*(one(i) for i in range(200)))
        assert all(o == "interrupted" or isinstance(o, int) for o in outcomes)
        assert len(outcomes) == 200
        # Every slot came back: four more jobs run at once without waiting for ever.
        done = await asyncio.wait_for(
            asyncio.gather(*(threads.run(lambda: 1, Interruptible()) for _ in range(4))), 30
        )
        assert done == [1, 1, 1, 1]
    finally:
        threading.excepthook = previous_hook
    assert stray == []
