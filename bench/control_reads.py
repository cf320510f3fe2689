"""What the pause check costs a worker: one read of a tenant's control stream (a worker
makes one per served tenant about once a second) against one dequeue and ack of a job,
on the same SQLite file in one run.

    PYTHONPATH=. python bench/control_reads.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.controls import pause_queue, read_controls, resume_queue

ROUNDS = 1000


async def measure(path: Path) -> tuple[float, float]:
    """Seconds per control read (of a 20-event stream) and per dequeue + ack."""
    ctx = QueueCtx("acme")
    async with SqliteBackend(path) as backend:
        message = JobMessage(job_type="x", payload_bytes=b"{}")
        await backend.enqueue_many(ctx, [message] * (2 * ROUNDS))
        for _ in range(10):
            await pause_queue(backend, ctx, "mail")
            await resume_queue(backend, ctx, "mail")
        started = time.perf_counter()
        for _ in range(ROUNDS):
            await read_controls(backend, ctx)
        reads = (time.perf_counter() - started) / ROUNDS
        started = time.perf_counter()
        for _ in range(ROUNDS):
            lease = await backend.dequeue(ctx, ["default"])
            assert lease is not None
            await backend.ack_complete(ctx, lease)
        jobs = (time.perf_counter() - started) / ROUNDS
    return reads, jobs


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        reads, jobs = asyncio.run(measure(Path(folder) / "queue.db"))
    print(
        f"control read: {reads * 1e6:.0f} us; dequeue + ack: {jobs * 1e6:.0f} us;"
        f" ratio {reads / jobs:.2f}"
    )


if __name__ == "__main__":
    main()
