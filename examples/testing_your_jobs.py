"""Testing your own jobs: a memory backend on a fake clock, and `run_until_idle`, which
runs what your code enqueued, retries and scheduled jobs included, in no real time.

With pytest, the fixtures come from dogqueue's plugin, registered when dogqueue is
installed:

    python -m pytest examples/testing_your_jobs.py

`python examples/testing_your_jobs.py` runs the same tests without pytest.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dogqueue import (
    FakeClock,
    Job,
    JobError,
    JobFailed,
    JobHandle,
    JobStatus,
    QueueAdapter,
    QueueCtx,
    current_run,
)
from dogqueue.backend.memory import MemoryBackend
from dogqueue.testing.runner import run_until_idle

SHOP = QueueCtx("shop")


class ChargeCard(Job[dict[str, int], int]):
    """Charge a card; the context maps card ids to balances. The card API is flaky:
    the first attempt of every charge times out."""

    JOB_TYPE = "charge_card"
    card: str
    cents: int

    async def execute(self, ctx: dict[str, int]) -> int:
        if current_run().attempt == 1:
            raise JobError("card API timed out")  # retried after a backoff
        if ctx[self.card] < self.cents:
            raise JobError("insufficient funds", retryable=False)
        ctx[self.card] -= self.cents
        return ctx[self.card]


async def place_order(adapter: QueueAdapter[dict[str, int]], cents: int) -> JobHandle[int]:
    """The code under test: it enqueues a charge now and a reminder tomorrow."""
    await adapter.enqueue(SHOP, ChargeCard(card="visa", cents=1), run_at=None)
    tomorrow = adapter.backend.clock() + timedelta(days=1)
    return await adapter.enqueue(SHOP, ChargeCard(card="visa", cents=cents), run_at=tomorrow)


def test_charges_run_with_retries_and_the_scheduled_one_tomorrow(
    dogqueue_adapter: QueueAdapter[dict[str, int]], dogqueue_clock: FakeClock
) -> None:
    async def scenario() -> None:
        await dogqueue_adapter.register_job(ChargeCard)
        wallet = {"visa": 500}
        handle = await place_order(dogqueue_adapter, 300)
        start = dogqueue_clock()
        report = await run_until_idle(dogqueue_adapter, context=wallet, clock=dogqueue_clock)
        assert report.statuses == {JobStatus.COMPLETED: 2}
        assert await dogqueue_adapter.wait_result(SHOP, handle) == 199
        assert report.now - start >= timedelta(days=1)  # the clock went to tomorrow

    asyncio.run(scenario())


def test_a_declined_charge_fails_for_good(
    dogqueue_adapter: QueueAdapter[dict[str, int]], dogqueue_clock: FakeClock
) -> None:
    async def scenario() -> None:
        await dogqueue_adapter.register_job(ChargeCard)
        handle = await dogqueue_adapter.enqueue(SHOP, ChargeCard(card="visa", cents=900))
        await run_until_idle(dogqueue_adapter, context={"visa": 500}, clock=dogqueue_clock)
        try:
            await dogqueue_adapter.wait_result(SHOP, handle)
        except JobFailed as failed:
            assert failed.error == "insufficient funds"
        else:
            raise AssertionError("the charge should have failed")

    asyncio.run(scenario())


if __name__ == "__main__":
    for test in (
        test_charges_run_with_retries_and_the_scheduled_one_tomorrow,
        test_a_declined_charge_fails_for_good,
    ):
        clock = FakeClock()
        adapter: QueueAdapter[dict[str, int]] = QueueAdapter(MemoryBackend(clock=clock))
        test(adapter, clock)
        print(f"ok: {test.__name__}")
