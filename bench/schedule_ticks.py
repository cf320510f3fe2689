"""The cost of `enqueue_due` per tick, on each backend: the call that enqueues a tick,
the call that finds nothing due (what every other caller pays), and both again once the
schedules have a long history in the log (the newest tick is one index step away, so
the cost should not grow with it). Figures go to bench/README.md.

    python bench/schedule_ticks.py [--schedules 20] [--minutes 200] [--history 5000]
        [--backends memory,sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from dogqueue import FakeClock, Job, QueueAdapter, Schedule, enqueue_due
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.sqlite import SqliteBackend

START = datetime(2030, 1, 1, tzinfo=UTC)


class Ping(Job[None, None]):
    JOB_TYPE = "ping"

    async def execute(self, ctx: None) -> None:
        return None


@asynccontextmanager
async def opened(kind: str, clock: FakeClock) -> AsyncIterator[EngineBackend]:
    """A fresh backend of `kind` on `clock`, removed afterwards."""
    if kind == "memory":
        async with MemoryBackend(clock=clock) as memory:
            yield memory
    elif kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            async with SqliteBackend(Path(folder) / "bench.db", clock=clock) as sqlite:
                yield sqlite
    else:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        try:
            async with PostgresBackend(default_dsn(), schema=schema, clock=clock) as postgres:
                yield postgres
        finally:
            conn = await asyncpg.connect(default_dsn())
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


async def measure(kind: str, schedules: int, minutes: int, history: int) -> dict[str, float]:
    """Microseconds per schedule: a call that enqueues one tick each, and a call at the
    same minute that finds nothing due; fresh, then after `history` more minutes."""
    clock = FakeClock(START)
    plan = [Schedule(f"s{i}", "* * * * *", Ping(), tenant=f"t{i % 4}") for i in range(schedules)]
    results: dict[str, float] = {}
    async with opened(kind, clock) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(Ping)

        async def run(label: str) -> None:
            due, idle = [], []
            for _ in range(minutes):
                clock.advance(timedelta(minutes=1))
                started = time.perf_counter()
                made = await enqueue_due(adapter, plan)
                due.append(time.perf_counter() - started)
                assert len(made) == schedules
                started = time.perf_counter()
                assert await enqueue_due(adapter, plan) == []
                idle.append(time.perf_counter() - started)
            results[f"{label} due"] = statistics.median(due) / schedules * 1e6
            results[f"{label} idle"] = statistics.median(idle) / schedules * 1e6

        await run("fresh")
        for _ in range(history):  # a long history, as fast as it can be written
            clock.advance(timedelta(minutes=1))
            await enqueue_due(adapter, plan)
        await run("history")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=200)
    parser.add_argument("--history", type=int, default=5000)
    parser.add_argument("--backends", default="memory,sqlite,postgres")
    args = parser.parse_args()
    print(
        f"{args.schedules} every-minute schedules, median of {args.minutes} minutes,"
        f" history {args.history} minutes ({args.schedules * args.history} tick jobs)"
    )
    print(
        "| backend | due: µs per tick | nothing due: µs per schedule | with history: due | idle |"
    )
    print("| --- | --- | --- | --- | --- |")
    for kind in args.backends.split(","):
        r = asyncio.run(measure(kind, args.schedules, args.minutes, args.history))
        print(
            f"| {kind} | {r['fresh due']:.0f} | {r['fresh idle']:.0f}"
            f" | {r['history due']:.0f} | {r['history idle']:.0f} |"
        )


if __name__ == "__main__":
    main()
