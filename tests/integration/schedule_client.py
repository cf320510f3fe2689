"""One process calling enqueue_due for the schedules of the multi-process test, on a
fake clock moved by its parent: each line "MINUTES" read from stdin sets the clock to
that many minutes after the start; the process then calls enqueue_due once and prints
"done MINUTES COUNT". An empty line ends it.

python -m tests.integration.schedule_client DB
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from dogqueue import FakeClock, Job, QueueAdapter, Schedule, enqueue_due
from dogqueue.backend import locate

START = datetime(2030, 3, 30, 20, 0, tzinfo=UTC)


class Tick(Job[None, None]):
    JOB_TYPE = "tick"

    async def execute(self, ctx: None) -> None:
        return None


def schedules() -> list[Schedule]:
    """The schedules every process runs (500 minutes cover Berlin's spring-forward)."""
    return [
        Schedule("minutely", "* * * * *", Tick(), tenant="acme"),
        Schedule("every-7", "*/7 * * * *", Tick(), tenant="acme", catch_up=4),
        Schedule("hourly", "@hourly", Tick(), tenant="acme", timezone="Europe/Berlin"),
        Schedule("nightly", "30 2 * * *", Tick(), tenant="acme", timezone="Europe/Berlin"),
        Schedule("minutely", "* * * * *", Tick(), tenant="globex", catch_up=3),
    ]


async def adapter_on(backend: object) -> QueueAdapter[None]:
    adapter: QueueAdapter[None] = QueueAdapter(backend)  # type: ignore[arg-type]
    await adapter.register_job(Tick)
    return adapter


async def main(db: str) -> None:
    clock = FakeClock(START)
    async with locate.open_backend(db, clock=clock) as backend:
        adapter = await adapter_on(backend)
        plan = schedules()
        while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
            minutes = int(line)
            clock.set(START + timedelta(minutes=minutes))
            ids = await enqueue_due(adapter, plan)
            print(f"done {minutes} {len(ids)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
