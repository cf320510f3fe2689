"""CPU time per job of dogqueue's SQLite lifecycle and of one caller's enqueue.

Wall-clock rates swing by 2x on a shared machine; the CPU the process spends per job
(user + system, both the event loop's and the writer's thread) moves much less, so
before/after comparisons of Python-side work are read here. The workload is
`compare.py`'s raw lifecycle (32 producers, 32 consumers leasing 32 at a time and
acknowledging each batch with `settle_many`), its sequential single enqueues, and its
real `Worker` (concurrency 256) running no-op jobs enqueued beforehand.

    python bench/cpu_per_job.py --jobs 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from pathlib import Path

from dogqueue import Completion, Job, JobMessage, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.sqlite import SqliteBackend

CTX = QueueCtx("tenant-1")
MESSAGE = JobMessage(job_type="send_email", payload_bytes=b'{"user_id": 12345}')
SINGLE_ENQUEUES = 2_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def lifecycle_cpu_us(path: Path, jobs: int) -> float:
    """CPU µs per job: enqueue by 32 producers, lease and settle by 32 consumers."""
    async with SqliteBackend(path) as backend:
        start = _cpu()

        async def produce(count: int) -> None:
            for _ in range(count):
                await backend.enqueue(CTX, MESSAGE)

        async def consume() -> None:
            while leases := await backend.dequeue_many(CTX, ["default"], 32):
                await backend.settle_many(CTX, [Completion(lease=lease) for lease in leases])

        await asyncio.gather(*(produce(jobs // 32) for _ in range(32)))
        await asyncio.gather(*(consume() for _ in range(32)))
        return (_cpu() - start) / (jobs // 32 * 32) * 1e6


def no_op_job(jobs: int) -> tuple[type[Job[None, None]], asyncio.Event]:
    """The job type of `MESSAGE`, doing nothing, and an event its `jobs`-th run sets."""
    ran = [0]
    all_ran = asyncio.Event()

    class SendEmail(Job[None, None]):
        JOB_TYPE = "send_email"
        user_id: int

        async def execute(self, ctx: None) -> None:
            ran[0] += 1
            if ran[0] == jobs:
                all_ran.set()

    return SendEmail, all_ran


async def worker_cpu_us(path: Path, jobs: int) -> tuple[float, float]:
    """(CPU µs per job of the whole process, of the event loop's thread alone) while the
    real `Worker` (concurrency 256) runs `jobs` no-op jobs enqueued beforehand."""
    SendEmail, all_ran = no_op_job(jobs)
    async with SqliteBackend(path) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(SendEmail)
        for first in range(0, jobs, 100):
            count = min(100, jobs - first)
            await asyncio.gather(*(backend.enqueue(CTX, MESSAGE) for _ in range(count)))
        start, loop_start = _cpu(), time.thread_time()
        worker = Worker(adapter, tenants=[CTX], concurrency=256, handle_signals=False)
        async with worker:
            await all_ran.wait()
            await worker.stop()
        return (_cpu() - start) / jobs * 1e6, (time.thread_time() - loop_start) / jobs * 1e6


async def single_enqueue(path: Path) -> tuple[float, float]:
    """(CPU µs per enqueue, p50 ms) of sequential single enqueues after a warm-up."""
    async with SqliteBackend(path) as backend:
        for _ in range(200):
            await backend.enqueue(CTX, MESSAGE)
        samples = []
        start = _cpu()
        for _ in range(SINGLE_ENQUEUES):
            began = time.perf_counter()
            await backend.enqueue(CTX, MESSAGE)
            samples.append(time.perf_counter() - began)
        cpu = (_cpu() - start) / SINGLE_ENQUEUES * 1e6
        return cpu, statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            life = asyncio.run(lifecycle_cpu_us(Path(folder) / "life.db", args.jobs))
            cpu, p50 = asyncio.run(single_enqueue(Path(folder) / "one.db"))
            worker, loop = asyncio.run(worker_cpu_us(Path(folder) / "worker.db", args.jobs))
        print(
            f"run {run + 1}: lifecycle {life:.0f} µs CPU/job; "
            f"single enqueue {cpu:.0f} µs CPU, p50 {p50:.3f} ms; "
            f"Worker {worker:.0f} µs CPU/job (event loop {loop:.0f})"
        )


if __name__ == "__main__":
    main()
