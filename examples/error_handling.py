"""Error handling: retries with backoff, permanent failures, lost leases and cancel-wins.

Run: python examples/error_handling.py
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dogqueue import (
    FakeClock,
    JobCanceled,
    JobError,
    JobMessage,
    JobStatus,
    LeaseLost,
    QueueConfig,
    QueueCtx,
)
from dogqueue.backend.memory import MemoryBackend


async def main() -> None:
    clock = FakeClock()
    config = QueueConfig(base_retry_backoff=timedelta(seconds=2))
    async with MemoryBackend(clock=clock, config=config) as backend:
        ctx = QueueCtx("acme")
        job_id = await backend.enqueue(
            ctx, JobMessage(job_type="fetch", payload_bytes=b"{}", max_retries=1)
        )

        # A retryable failure: the job comes back after a jittered backoff in [1s, 2s].
        lease = await backend.dequeue(ctx, ["default"])
        assert lease is not None
        try:
            raise JobError("upstream API timed out")
        except JobError as error:
            status = await backend.ack_fail(ctx, lease, error.message, retry=error.retryable)
        info = await backend.get_job(ctx, job_id)
        print(status, "- retry at +", info.run_at - clock())

        # The second attempt's lease runs out: that is a failed attempt too, and the last.
        clock.advance(timedelta(seconds=2))
        lease = await backend.dequeue(ctx, ["default"], lease_duration=timedelta(seconds=10))
        assert lease is not None
        clock.advance(timedelta(seconds=10))
        try:
            await backend.ack_complete(ctx, lease)
        except LeaseLost:
            print("too late: the lease expired")
        await backend.reap_expired()
        print("status:", await backend.get_status(ctx, job_id))

        # Cancel wins over the holder of a lease.
        other = await backend.enqueue(ctx, JobMessage(job_type="fetch", payload_bytes=b"{}"))
        lease = await backend.dequeue(ctx, ["default"])
        assert lease is not None and lease.job_id == other
        assert await backend.cancel_job(ctx, other) is JobStatus.CANCELED
        try:
            await backend.ack_complete(ctx, lease)
        except JobCanceled:
            print("cancel won over the running job")


if __name__ == "__main__":
    asyncio.run(main())
