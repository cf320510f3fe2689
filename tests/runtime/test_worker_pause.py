"""A paused queue: the worker stops leasing from it within 2 s and leases again within 2 s
of the resume; jobs already running finish; other queues go on. Run on the
simulation's virtual-time event loop (no sleeping: time jumps to the next timer), with
the storage clock following it, so the events' times are the worker's times."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from dogqueue import Job, JobStatus, Leased, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.memory import MemoryBackend
from dogqueue.controls import ALL_TENANTS_CTX, pause_queue, resume_queue
from dogqueue.testing.simulation.loop import SimLoop

START = datetime(2030, 1, 1, tzinfo=UTC)
ACME = QueueCtx("acme")
PROMISE = timedelta(seconds=2)


class Chunk(Job[None, None]):
    """Takes half a second."""

    JOB_TYPE = "chunk"
    n: int

    async def execute(self, ctx: None) -> None:
        await asyncio.sleep(0.5)


def run_virtually(main: Callable[[SimLoop], Awaitable[None]]) -> None:
    loop = SimLoop(random.Random(5))
    try:
        loop.run_until_complete(main(loop))
    finally:
        loop.close()


async def _story(loop: SimLoop, pauser: QueueCtx, tenants: list[QueueCtx] | None) -> None:
    backend = MemoryBackend(clock=lambda: START + timedelta(seconds=loop.time()))
    adapter: QueueAdapter[None] = QueueAdapter(backend)
    await adapter.register_job(Chunk)
    mail = [await adapter.enqueue(ACME, Chunk(n=i), queue="mail") for i in range(60)]
    other = [await adapter.enqueue(ACME, Chunk(n=i)) for i in range(30)]  # done before resume
    async with Worker(
        adapter,
        tenants=tenants,
        queues=("mail", "default"),
        concurrency=2,
        blocked_loop_warning=None,
        handle_signals=False,
    ):
        # As from another process (the command line): no wake-up reaches this worker.
        backend.notify_change = lambda: None  # type: ignore[method-assign]
        await asyncio.sleep(3)
        await pause_queue(backend, pauser, "mail")
        paused_at = backend.now()
        await asyncio.sleep(10)
        await resume_queue(backend, pauser, "mail")
        resumed_at = backend.now()
        while (await backend.get_status(ACME, mail[-1])) is not JobStatus.COMPLETED:  # noqa: ASYNC110
            await asyncio.sleep(1)  # virtual time

    leased_mail = [
        event.at
        for job_id in mail
        for event in await backend.history(ACME, job_id)
        if isinstance(event, Leased)
    ]
    leased_other = [
        event.at
        for job_id in other
        for event in await backend.history(ACME, job_id)
        if isinstance(event, Leased)
    ]
    before = [at for at in leased_mail if at <= paused_at]
    assert before, "mail was leased before the pause"
    assert not [at for at in leased_mail if paused_at + PROMISE < at < resumed_at]
    after = [at for at in leased_mail if at >= resumed_at]
    assert after and min(after) <= resumed_at + PROMISE
    # The other queue went on meanwhile, and everything leased before the pause finished.
    assert [at for at in leased_other if paused_at + PROMISE < at < resumed_at]
    statuses = [(await backend.get_job(ACME, job_id)).status for job_id in mail + other]
    assert set(statuses) <= {JobStatus.COMPLETED, JobStatus.ENQUEUED}
    assert all(s is JobStatus.COMPLETED for s in statuses[: len(before)])


@pytest.mark.parametrize(
    ("pauser", "tenants"),
    [(ACME, [ACME]), (ACME, None), (ALL_TENANTS_CTX, None)],
    ids=["tenant-named-worker", "tenant-found-worker", "all-tenants"],
)
def test_a_paused_queue_stops_within_two_seconds_and_resumes_within_two(
    pauser: QueueCtx, tenants: list[QueueCtx] | None
) -> None:
    run_virtually(lambda loop: _story(loop, pauser, tenants))
