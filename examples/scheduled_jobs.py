"""Scheduled jobs: `run_at` holds a job back until its time; a fake clock shows it.

Run: python examples/scheduled_jobs.py
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.memory import MemoryBackend


async def main() -> None:
    clock = FakeClock()
    async with MemoryBackend(clock=clock) as backend:
        ctx = QueueCtx("acme")
        in_an_hour = clock() + timedelta(hours=1)
        job_id = await backend.enqueue(
            ctx, JobMessage(job_type="digest", payload_bytes=b"{}", run_at=in_an_hour)
        )
        print("due now?", await backend.dequeue(ctx, ["default"]) is not None)
        print("next run at:", await backend.next_run_at(["default"]))
        clock.advance(timedelta(hours=1))
        lease = await backend.dequeue(ctx, ["default"])
        print("due after an hour?", lease is not None and lease.job_id == job_id)


if __name__ == "__main__":
    asyncio.run(main())
