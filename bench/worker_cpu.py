"""The `Worker`'s own CPU per job and the cycle collections it causes.

The backend is a `MemoryBackend` whose `dequeue_many` hands out leases taken before the
`Worker` starts and whose `settle_many` answers COMPLETED at once, so the event loop's
CPU is the Worker's: its tasks, contexts, runs, scopes, settlements and the collector.
Collections are counted (young / middle / full) and timed (thread CPU) only while the
`Worker` runs, the jobs no-ops at concurrency 256.

    python bench/worker_cpu.py --jobs 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.cpu_per_job import CTX, MESSAGE, no_op_job
from dogqueue import JobStatus, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.memory import MemoryBackend
from dogqueue.core.errors import QueueError
from dogqueue.core.job import LeasedJob, Settlement


class PreLeased(MemoryBackend):
    """Leases taken beforehand, settlements answered without storage."""

    def __init__(self) -> None:
        super().__init__()
        self.leases: list[LeasedJob] = []

    async def dequeue_many(
        self, ctx: QueueCtx, queues: Sequence[str], n: int, **_: object
    ) -> list[LeasedJob]:
        taken = self.leases[:n]
        del self.leases[:n]
        return taken

    async def settle_many(
        self, ctx: QueueCtx, settlements: Sequence[Settlement]
    ) -> list[JobStatus | QueueError]:
        return [JobStatus.COMPLETED] * len(settlements)


@dataclass
class Collections:
    """Cycle collections by generation and their thread CPU, while `on`."""

    on: bool = False
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    seconds: float = 0.0
    _began: float = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._began = time.thread_time()
        else:
            self.counts[info["generation"]] += 1
            self.seconds += time.thread_time() - self._began


async def worker_alone(jobs: int) -> tuple[float, Collections]:
    """(Loop CPU µs per job, the collections) of the `Worker` running `jobs` no-ops."""
    SendEmail, all_ran = no_op_job(jobs)
    collections = Collections()
    async with PreLeased() as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(SendEmail)
        for _ in range(jobs):
            await backend.enqueue(CTX, MESSAGE)
        backend.leases = await MemoryBackend.dequeue_many(backend, CTX, ["default"], jobs)
        gc.collect()
        gc.callbacks.append(collections)
        try:
            collections.on = True
            start = time.thread_time()
            worker = Worker(adapter, tenants=[CTX], concurrency=256, handle_signals=False)
            async with worker:
                await all_ran.wait()
                await worker.stop()
            cpu = (time.thread_time() - start) / jobs * 1e6
            collections.on = False
        finally:
            gc.callbacks.remove(collections)
    return cpu, collections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for run in range(args.repeat):
        cpu, made = asyncio.run(worker_alone(args.jobs))
        runs.append(cpu)
        young, middle, full = made.counts
        print(
            f"run {run + 1}: Worker {cpu:.1f} µs CPU/job; collections {young} / {middle} / "
            f"{full}, {made.seconds / args.jobs * 1e6:.2f} µs/job"
        )
    print(f"median {statistics.median(runs):.1f} µs CPU/job")


if __name__ == "__main__":
    main()
