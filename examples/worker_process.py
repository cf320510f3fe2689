"""A worker process for your own jobs.

Run it from the command line (the graceful stop is SIGTERM or Ctrl-C):

    dogqueue worker worker_process:make_adapter --db queue.db --concurrency 8

(with this directory on PYTHONPATH). `python examples/worker_process.py` enqueues a few
jobs into a temporary database and runs them with an in-process Worker instead.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from dogqueue import Backend, Job, JobStatus, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.sqlite import SqliteBackend


@dataclass
class Services:
    """What jobs get as their context: clients, settings, connections."""

    greeting: str = "hello"


class Greet(Job[Services, str]):
    """Greet someone."""

    JOB_TYPE = "greet"
    name: str

    async def execute(self, ctx: Services) -> str:
        return f"{ctx.greeting}, {self.name}"


class Nap(Job[Services, None]):
    """Sleep; a long job shows what a graceful stop does."""

    JOB_TYPE = "nap"
    TIMEOUT = timedelta(minutes=10)
    seconds: float

    async def execute(self, ctx: Services) -> None:
        await asyncio.sleep(self.seconds)


async def make_adapter(backend: Backend) -> tuple[QueueAdapter[Services], Services]:
    """The factory `dogqueue worker` calls with the backend of --db."""
    adapter: QueueAdapter[Services] = QueueAdapter(backend)
    await adapter.register_job(Greet)
    await adapter.register_job(Nap)
    return adapter, Services()


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        async with SqliteBackend(Path(directory) / "queue.db") as backend:
            adapter, services = await make_adapter(backend)
            ctx = QueueCtx("tenant-1")
            ids = [await adapter.enqueue(ctx, Greet(name=n)) for n in ("ada", "grace")]
            async with Worker(adapter, context=services, concurrency=4):
                while {await adapter.get_status(ctx, i) for i in ids} != {JobStatus.COMPLETED}:  # noqa: ASYNC110 (polling stored state)
                    await asyncio.sleep(0.01)
            for job_id in ids:
                print(await adapter.get_result(ctx, job_id, str))


if __name__ == "__main__":
    asyncio.run(main())
