"""Jobs for the worker processes of the application tests: an "old" build without the
`report` job type and a "new" build with it, as in a rolling deploy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from dogqueue import Backend, Job, QueueAdapter, SyncJob, current_run


def mark(path: str, text: str) -> None:
    """Leave a file the test can see (the job runs in another process)."""
    Path(path).write_text(text)


class Sleepy(Job[None, str]):
    """Sleeps; writes `marker` when its task is cancelled."""

    JOB_TYPE = "sleepy"
    marker: str
    seconds: float

    async def execute(self, ctx: None) -> str:
        mark(self.marker + ".started", current_run().job_id)
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            mark(self.marker, "cancelled")
            raise
        return "slept"


class Boom(Job[None, None]):
    """Fails with a two-line message."""

    JOB_TYPE = "boom"

    async def execute(self, ctx: None) -> None:
        raise ValueError("card declined: insufficient funds\nsecond line of detail")


class Snooze(SyncJob[None, str]):
    """Blocks its thread (a synchronous client, say) for longer than the lease."""

    JOB_TYPE = "snooze"
    seconds: float

    def execute(self, ctx: None) -> str:
        time.sleep(self.seconds)
        return f"woke after attempt {current_run().attempt}"


class Report(Job[None, str]):
    """Only the new build has it."""

    JOB_TYPE = "report"
    name: str

    async def execute(self, ctx: None) -> str:
        return f"report {self.name} (attempt {current_run().attempt})"


async def make_old(backend: Backend) -> QueueAdapter[None]:
    """The build being replaced."""
    adapter: QueueAdapter[None] = QueueAdapter(backend)
    await adapter.register_job(Sleepy)
    await adapter.register_job(Boom)
    await adapter.register_job(Snooze)
    return adapter


async def make_new(backend: Backend) -> QueueAdapter[None]:
    """The build being rolled out."""
    adapter = await make_old(backend)
    await adapter.register_job(Report)
    return adapter
