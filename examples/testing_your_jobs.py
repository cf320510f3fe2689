"""Testing your own jobs: the memory backend, a fake clock and the job registry.

Run: python -m pytest examples/testing_your_jobs.py
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dogqueue import FakeClock, Job, JobError, JobStatus, QueueAdapter, QueueCtx
from dogqueue.backend.memory import MemoryBackend


class ChargeCard(Job[dict[str, int], int]):
    """Charge a card; the context maps card ids to balances."""

    JOB_TYPE = "charge_card"
    MAX_RETRIES = 0
    card: str
    cents: int

    async def execute(self, ctx: dict[str, int]) -> int:
        if ctx[self.card] < self.cents:
            raise JobError("insufficient funds", retryable=False)
        ctx[self.card] -= self.cents
        return ctx[self.card]


async def run_one(
    adapter: QueueAdapter[dict[str, int]], ctx: QueueCtx, wallet: dict[str, int]
) -> None:
    """What a worker does for one job."""
    lease = await adapter.backend.dequeue(ctx, ["default"])
    assert lease is not None
    try:
        result = await adapter.job_registry.execute_job(lease.message, wallet)
    except JobError as error:
        await adapter.backend.ack_fail(ctx, lease, error.message, retry=error.retryable)
    else:
        await adapter.backend.ack_complete(ctx, lease, result)


def test_charge_card_completes_then_fails_for_good() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        adapter: QueueAdapter[dict[str, int]] = QueueAdapter(MemoryBackend(clock=clock))
        await adapter.register_job(ChargeCard)
        ctx, wallet = QueueCtx("shop"), {"visa": 500}

        paid = await adapter.enqueue(ctx, ChargeCard(card="visa", cents=300))
        await run_one(adapter, ctx, wallet)
        assert await adapter.get_result(ctx, paid, int) == 200

        refused = await adapter.enqueue(ctx, ChargeCard(card="visa", cents=300))
        await run_one(adapter, ctx, wallet)
        info = await adapter.get_job(ctx, refused)
        assert info.status is JobStatus.FAILED and info.last_error == "insufficient funds"
        clock.advance(timedelta(days=1))
        assert await adapter.backend.dequeue(ctx, ["default"]) is None

    asyncio.run(scenario())


if __name__ == "__main__":
    test_charge_card_completes_then_fails_for_good()
    print("ok")
