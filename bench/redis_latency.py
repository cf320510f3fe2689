"""Enqueue→start latency of dogqueue on Redis, for bench/compare_redis.py: a worker
process (dogqueue's Worker, concurrency 16) runs stamped no-op jobs that another
process enqueues at a fixed rate; each job's delay is the wall time from before its
enqueue call to the start of its execution (one host, one clock)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from dogqueue import Job, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.redis import RedisBackend

CTX = QueueCtx("latency")
ROOT = Path(__file__).resolve().parents[1]


class Stamped(Job[list[float], None]):
    """Records how long after `enqueued_at` it started."""

    JOB_TYPE = "stamped"
    enqueued_at: float

    async def execute(self, ctx: list[float]) -> None:
        ctx.append(time.time() - self.enqueued_at)


async def adapter_on(backend: RedisBackend) -> QueueAdapter[list[float]]:
    adapter: QueueAdapter[list[float]] = QueueAdapter(backend)
    await adapter.register_job(Stamped)
    return adapter


async def work(url: str, n: int) -> list[float]:
    """The worker process: run `n` stamped jobs, then return their delays."""
    delays: list[float] = []
    async with RedisBackend(url, prefix="latency") as backend:
        adapter = await adapter_on(backend)
        worker = Worker(
            adapter, context=delays, tenants=[CTX], concurrency=16, handle_signals=False
        )
        async with worker:
            print("ready", flush=True)
            while len(delays) < n:  # noqa: ASYNC110 (the jobs append; no event to wait on)
                await asyncio.sleep(0.05)
    return delays


async def produce(url: str, n: int, rate: float) -> None:
    """Enqueue `n` stamped jobs at `rate` per second, one call each."""
    async with RedisBackend(url, prefix="latency") as backend:
        adapter = await adapter_on(backend)
        start = time.perf_counter()
        for i in range(n):
            await adapter.enqueue(CTX, Stamped(enqueued_at=time.time()))
            pause = start + (i + 1) / rate - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure_latency(url: str, n: int, rate: float) -> tuple[float, float]:
    """(p50, p99) enqueue→start delay in seconds, worker and producer in two processes."""
    worker = subprocess.Popen(
        [sys.executable, __file__, url, str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this tree's dogqueue
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    asyncio.run(produce(url, n, rate))
    out, _ = worker.communicate(timeout=600)
    delays = [float(line) for line in out.split()]
    return percentile(delays, 0.50), percentile(delays, 0.99)


if __name__ == "__main__":
    for delay in asyncio.run(work(sys.argv[1], int(sys.argv[2]))):
        print(delay)
