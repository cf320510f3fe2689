"""Testing your own jobs with dogqueue's pytest plugin (registered when dogqueue is
installed; the async fixtures need pytest-asyncio, in `dogqueue[testing]`):

    python -m pytest examples/testing_your_jobs.py

Your application keeps its jobs in one JobRegistry, filled where the jobs are defined.
One fixture override hands it to the plugin; every adapter the fixtures make knows
those jobs. `python examples/testing_your_jobs.py` runs these tests with pytest.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest

from dogqueue import (
    FakeClock,
    Job,
    JobError,
    JobFailed,
    JobHandle,
    JobRegistry,
    JobStatus,
    QueueAdapter,
    QueueCtx,
    current_run,
    job,
)
from dogqueue.testing.runner import run_until_idle

pytestmark = pytest.mark.asyncio  # for projects whose pytest-asyncio runs in strict mode

# --- the application -------------------------------------------------------------
SHOP = QueueCtx("shop")
jobs: JobRegistry[dict[str, int]] = JobRegistry()


@jobs.register
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


@job(registry=jobs, takes_context=False)
async def receipt(cents: int) -> str:
    """A function job that needs no context: every parameter is payload."""
    return f"paid {cents / 100:.2f}"


async def place_order(adapter: QueueAdapter[Any], cents: int) -> JobHandle[int]:
    """The code under test: it enqueues a charge now and another one tomorrow."""
    await adapter.enqueue(SHOP, ChargeCard(card="visa", cents=1))
    tomorrow = adapter.backend.clock() + timedelta(days=1)
    return await adapter.enqueue(SHOP, ChargeCard(card="visa", cents=cents), run_at=tomorrow)


# --- its tests (the two fixtures below usually live in conftest.py) ----------------
@pytest.fixture
def dogqueue_jobs() -> JobRegistry[dict[str, int]]:
    return jobs


@pytest.fixture
def dogqueue_context() -> dict[str, int]:
    return {"visa": 500}


async def test_charges_run_with_retries_and_the_scheduled_one_tomorrow(
    dogqueue_adapter: QueueAdapter[dict[str, int]], dogqueue_clock: FakeClock
) -> None:
    wallet = {"visa": 500}
    handle = await place_order(dogqueue_adapter, 300)
    start = dogqueue_clock()
    report = await run_until_idle(dogqueue_adapter, context=wallet, clock=dogqueue_clock)
    assert report.statuses == {JobStatus.COMPLETED: 2}
    assert await dogqueue_adapter.wait_result(SHOP, handle) == 199
    assert report.now - start >= timedelta(days=1)  # the clock went to tomorrow


async def test_immediate_mode_runs_each_job_as_it_is_enqueued(
    dogqueue_immediate: QueueAdapter[dict[str, int]], dogqueue_context: dict[str, int]
) -> None:
    charge = await dogqueue_immediate.enqueue(SHOP, ChargeCard(card="visa", cents=120))
    assert await dogqueue_immediate.get_status(SHOP, charge) is JobStatus.COMPLETED
    assert dogqueue_context["visa"] == 380  # after the retry: the clock moved through it
    paid = await dogqueue_immediate.enqueue(SHOP, receipt(120))
    assert await dogqueue_immediate.wait_result(SHOP, paid) == "paid 1.20"


async def test_a_declined_charge_fails_for_good(
    dogqueue_immediate: QueueAdapter[dict[str, int]],
) -> None:
    handle = await dogqueue_immediate.enqueue(SHOP, ChargeCard(card="visa", cents=900))
    with pytest.raises(JobFailed) as failed:
        await dogqueue_immediate.wait_result(SHOP, handle)
    assert failed.value.error == "insufficient funds"


if __name__ == "__main__":
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    raise SystemExit(subprocess.call(command))
