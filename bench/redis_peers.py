"""BullMQ's Python port and streaQ for bench/compare_redis.py: each runs N no-op jobs
through its own queue (enqueued from 16 tasks, consumed by its worker at concurrency
16) and returns how many ran. `queue` names the process's queue (one per process)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

TASKS = 16


async def in_tasks(n: int, one: Callable[[int], Awaitable[None]]) -> None:
    """Run `one(i)` for i in range(n) from TASKS tasks."""
    counter = iter(range(n))

    async def task() -> None:
        for i in counter:
            await one(i)

    await asyncio.gather(*(task() for _ in range(TASKS)))


async def run_bullmq(url: str, n: int, queue: str = "bench") -> int:
    from bullmq import Queue, Worker

    done = 0
    finished = asyncio.Event()

    async def noop(job: Any, token: str) -> None:
        nonlocal done
        done += 1
        if done >= n:
            finished.set()

    producer = Queue(queue, {"connection": url})

    async def enqueue(_: int) -> None:
        await producer.add("noop", {"n": 1})

    await in_tasks(n, enqueue)
    worker = Worker(queue, noop, {"connection": url, "concurrency": TASKS})
    await finished.wait()
    await worker.close()
    await producer.close()
    return done


async def run_streaq(url: str, n: int, queue: str = "bench") -> int:
    from streaq import Worker

    done = 0
    finished = asyncio.Event()
    worker: Any = Worker(redis_url=url, queue_name=queue, concurrency=TASKS, handle_signals=False)

    @worker.task  # type: ignore[untyped-decorator]
    async def noop() -> None:
        nonlocal done
        done += 1
        if done >= n:
            finished.set()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        async with worker:

            async def enqueue(_: int) -> None:
                await noop.enqueue()

            await in_tasks(n, enqueue)
        runner = asyncio.ensure_future(worker.run_async())
        await finished.wait()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return done
