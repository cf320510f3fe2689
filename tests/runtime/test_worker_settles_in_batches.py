"""The worker acknowledges jobs that finish together in one `settle_many` per batch,
and a refused acknowledgement in a batch refuses only its own job."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from dogqueue import (
    Completion,
    Failure,
    JobCanceled,
    JobMessage,
    JobStatus,
    QueueAdapter,
    QueueCtx,
    Worker,
)
from dogqueue.backend.memory import MemoryBackend
from dogqueue.worker.settler import Settler
from tests.runtime.helpers import Echo, Probe, until_status

T = QueueCtx("tenant-a")
NEVER = timedelta(hours=1)


async def test_jobs_finishing_together_are_settled_in_few_batches() -> None:
    async with MemoryBackend() as backend:
        adapter: QueueAdapter[Probe] = QueueAdapter(backend)
        await adapter.register_job(Echo)
        job_ids = [await adapter.enqueue(T, Echo(text=str(i))) for i in range(60)]
        worker = Worker(adapter, context=Probe(), concurrency=20, handle_signals=False)
        async with worker:
            for job_id in job_ids:
                await until_status(backend, T, job_id, JobStatus.COMPLETED)
        settler = worker._settler
        assert settler.settled == 60
        assert settler.batches < 30, f"{settler.batches} batches for 60 jobs"
        assert (await backend.get_job(T, job_ids[0])).result == b'"0"'


async def test_a_lone_acknowledgement_is_not_held_back() -> None:
    async with MemoryBackend() as backend:
        await backend.enqueue(T, JobMessage(job_type="echo", payload_bytes=b"{}"))
        lease = await backend.dequeue(T, ["default"])
        assert lease is not None
        settler = Settler(backend)
        status = await asyncio.wait_for(settler.settle(T, Completion(lease=lease)), 5)
        assert status is JobStatus.COMPLETED
        assert settler.batches == 1


async def test_a_refused_acknowledgement_fails_alone() -> None:
    async with MemoryBackend() as backend:
        await backend.enqueue_many(
            T, [JobMessage(job_type="echo", payload_bytes=b"{}", max_retries=0)] * 3
        )
        leases = await backend.dequeue_many(T, ["default"], 3)
        await backend.cancel_job(T, leases[1].job_id)
        settler = Settler(backend)
        outcomes = await asyncio.gather(
            settler.settle(T, Completion(lease=leases[0])),
            settler.settle(T, Completion(lease=leases[1])),
            settler.settle(T, Failure(lease=leases[2], error="boom")),
            return_exceptions=True,
        )
        assert outcomes[0] is JobStatus.COMPLETED
        assert isinstance(outcomes[1], JobCanceled)
        assert outcomes[2] is JobStatus.FAILED
        assert settler.batches == 1


async def test_a_batch_that_fails_as_a_whole_fails_every_caller() -> None:
    backend = MemoryBackend()
    await backend.open()
    await backend.enqueue(T, JobMessage(job_type="echo", payload_bytes=b"{}"))
    lease = await backend.dequeue(T, ["default"])
    assert lease is not None
    await backend.close()
    settler = Settler(backend)
    with pytest.raises(Exception, match="closed"):
        await settler.settle(T, Completion(lease=lease))
