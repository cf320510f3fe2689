"""A job canceled on one host stops on another: the cancel travels by pub/sub to the
worker's cancel listener, which stops the running job at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dogqueue import Job, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.redis.backend import default_cluster, default_url
from tests.runtime.helpers import event_types, until, within

ACME = QueueCtx("acme")


class Started:
    """What the job tells the test."""

    def __init__(self) -> None:
        self.event = asyncio.Event()


class WaitsForever(Job[Started, None]):
    """Runs until it is stopped."""

    JOB_TYPE = "waits-forever"

    async def execute(self, ctx: Started) -> None:
        ctx.event.set()
        await asyncio.Event().wait()


def open_backend(prefix: str) -> RedisBackend:
    return RedisBackend(default_url(), prefix=prefix, durability="none", cluster=default_cluster())


async def test_a_cancel_on_one_host_stops_the_job_running_on_another(
    redis_prefix: str,
) -> None:
    async with open_backend(redis_prefix) as here, open_backend(redis_prefix) as there:
        adapter: QueueAdapter[Started] = QueueAdapter(here)
        await adapter.register_job(WaitsForever)
        heard: list[tuple[str, str]] = []
        here.add_cancel_listener(lambda tenant, job: heard.append((tenant, job)))
        job_id = await adapter.enqueue(ACME, WaitsForever())
        started = Started()
        # Only the cancel listener can stop the job within the test's patience: no
        # periodic cancel check, heartbeats an hour apart, a lease of a minute.
        worker = Worker(
            adapter,
            context=started,
            tenants=[ACME],
            handle_signals=False,
            cancel_check_interval=None,
            heartbeat_interval=timedelta(hours=1),
            lease_duration=timedelta(seconds=60),
        )
        async with worker:
            await within(started.event.wait())
            await there.cancel_job(ACME, job_id)

            async def stopped() -> bool:
                return worker.running == 0

            await until(stopped)
        assert heard == [("acme", job_id)]
        assert await event_types(here, ACME, job_id) == ["enqueued", "leased", "canceled"]
