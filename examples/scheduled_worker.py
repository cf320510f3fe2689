"""Periodic jobs run by worker processes.

    dogqueue worker scheduled_worker:make_adapter --db queue.db

runs the SCHEDULES below beside the queue's jobs (any number of such workers may run:
each tick is enqueued once), and

    dogqueue schedules --db queue.db scheduled_worker

lists each schedule's last tick (from the log) and next tick (with this directory on
PYTHONPATH). `python examples/scheduled_worker.py` runs a Worker with them on a fake
clock through a simulated hour instead.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dogqueue import Backend, FakeClock, Job, JobStatus, QueueAdapter, Schedule, Worker
from dogqueue.backend.sqlite import SqliteBackend


class Heartbeat(Job[None, str]):
    """Say the system is alive."""

    JOB_TYPE = "heartbeat"

    async def execute(self, ctx: None) -> str:
        return "alive"


class Digest(Job[None, None]):
    """Send a digest of the last hours."""

    JOB_TYPE = "digest"
    audience: str

    async def execute(self, ctx: None) -> None:
        return None


SCHEDULES = [
    Schedule("heartbeat", "* * * * *", Heartbeat(), tenant="acme"),
    # 07:00 on weekdays in New York, whatever the season; after downtime, up to three
    # missed digests are sent.
    Schedule(
        "morning-digest",
        "0 7 * * MON-FRI",
        Digest(audience="team"),
        tenant="acme",
        timezone="America/New_York",
        catch_up=3,
    ),
    Schedule("quarter-hour", "*/15 * * * *", Digest(audience="ops"), tenant="acme"),
]


async def make_adapter(backend: Backend) -> QueueAdapter[None]:
    """The factory `dogqueue worker` calls with the backend of --db."""
    adapter: QueueAdapter[None] = QueueAdapter(backend)
    await adapter.register_job(Heartbeat)
    await adapter.register_job(Digest)
    return adapter


async def settled(backend: Backend, expected: int) -> None:
    """Wait until `expected` jobs have completed (the worker runs them in real time)."""
    while True:
        jobs = await backend.projected_jobs()
        if sum(job.status is JobStatus.COMPLETED for job in jobs.values()) >= expected:
            return
        await backend.wait_for_change(0.01)


async def main() -> None:
    clock = FakeClock(datetime(2030, 1, 7, 12, 0, tzinfo=UTC))  # 07:00 in New York
    with tempfile.TemporaryDirectory() as folder:
        async with SqliteBackend(Path(folder) / "queue.db", clock=clock) as backend:
            adapter = await make_adapter(backend)
            async with Worker(adapter, schedules=SCHEDULES, handle_signals=False) as worker:
                expected = 3  # at noon UTC: a heartbeat, the digest, a quarter-hour
                for minute in range(1, 61):
                    await settled(backend, expected)
                    clock.advance(timedelta(minutes=1))
                    worker.wake()
                    expected += 1 + (minute % 15 == 0)
                await settled(backend, expected)
            jobs = await backend.projected_jobs()
    per_schedule = Counter(
        (job.message.idempotency_key or "").partition("@")[0] for job in jobs.values()
    )
    for key_prefix, count in sorted(per_schedule.items()):
        print(f"{key_prefix}: {count} jobs in a simulated hour")


if __name__ == "__main__":
    asyncio.run(main())
