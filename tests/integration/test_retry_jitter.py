"""Each built-in backend applies its jitter draw exactly: the retry delay is the full
backoff shortened by the draw (the conformance suite checks only the bounds, as a
factory cannot be handed a draw)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dogqueue import Failed, FakeClock, JobStatus, QueueConfig, QueueCtx
from dogqueue.testing.conformance.fixtures import MakeBackend
from dogqueue.testing.conformance.helpers import message

CTX = QueueCtx("tenant-a")
CONFIG = QueueConfig(
    base_retry_backoff=timedelta(seconds=2), max_retry_backoff=timedelta(seconds=60)
)


@pytest.mark.parametrize(("draw", "fraction"), [(0.0, 0.5), (1.0, 1.0), (0.5, 0.75)])
async def test_retry_delay_doubles_and_is_jittered_by_the_draw(
    make_backend: MakeBackend, clock: FakeClock, draw: float, fraction: float
) -> None:
    async with make_backend(config=CONFIG, draw=lambda: draw) as backend:
        job_id = await backend.enqueue(CTX, message(max_retries=10))
        for attempt in range(1, 8):
            failed_at = clock()
            lease = await backend.dequeue(CTX, ["default"])
            assert lease is not None
            assert await backend.ack_fail(CTX, lease, "flaky") is JobStatus.ENQUEUED
            info = await backend.get_job(CTX, job_id)
            full = min(timedelta(seconds=2) * 2 ** (attempt - 1), timedelta(seconds=60))
            assert info.run_at - failed_at == full * fraction
            history = await backend.history(CTX, job_id)
            assert isinstance(history[-1], Failed) and history[-1].retry_at == info.run_at
            clock.set(info.run_at)
