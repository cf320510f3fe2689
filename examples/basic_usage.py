"""Basic usage: define a typed job, enqueue it on SQLite, lease it, run it, read its history.

Run: python examples/basic_usage.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from dogqueue import Job, QueueAdapter, QueueCtx, fold
from dogqueue.backend.sqlite import SqliteBackend


class SendWelcome(Job[str, str]):
    """Send a welcome e-mail; the worker's context is the sender address."""

    JOB_TYPE = "send_welcome"
    to: str

    async def execute(self, ctx: str) -> str:
        return f"sent from {ctx} to {self.to}"


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with SqliteBackend(Path(folder) / "queue.db") as backend:
            adapter: QueueAdapter[str] = QueueAdapter(backend)
            await adapter.register_job(SendWelcome)
            ctx = QueueCtx("acme")

            job_id = await adapter.enqueue(ctx, SendWelcome(to="ada@example.com"))

            lease = await backend.dequeue(ctx, ["default"])
            assert lease is not None
            result = await adapter.job_registry.execute_job(lease.message, "noreply@acme.test")
            await backend.ack_complete(ctx, lease, result)

            print("result:", await adapter.get_result(ctx, job_id, str))
            history = await backend.history(ctx, job_id)
            for event in history:
                print(f"  #{event.seq} {event.type} at {event.at:%H:%M:%S}")
            assert fold(history) == await backend.get_job(ctx, job_id)


if __name__ == "__main__":
    asyncio.run(main())
