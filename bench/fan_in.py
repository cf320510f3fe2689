"""Fan-in: one job after N children, enqueued in one call, the children leased and
completed by concurrent consumers, then the fan-in job leased once.

    python bench/fan_in.py --children 10000 --backends memory,sqlite,postgres

Prints one markdown row per backend: the time to enqueue the chord (one transaction),
to lease and complete every child (each completion also appends a `parent_finished`
event to the fan-in job, in the same transaction), and from the last child's completion
to the fan-in job's lease. Nothing here is asserted on time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from dogqueue import JobMessage, JobStatus, LeasedJob, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.sqlite import SqliteBackend

CTX = QueueCtx("tenant-1")
CHILD = JobMessage(job_type="part", payload_bytes=b'{"part": 1}')
BACKENDS = ("memory", "sqlite", "postgres")


@dataclass(frozen=True)
class FanIn:
    """One run's figures, in seconds."""

    backend: str
    children: int
    enqueue_s: float
    children_s: float
    release_s: float
    fan_in_events: int

    def row(self) -> str:
        per_child_us = 1e6 * self.children_s / self.children
        return (
            f"| {self.backend} | {self.children:,} | {self.enqueue_s:.2f} s |"
            f" {self.children_s:.2f} s ({per_child_us:.0f} µs/child) |"
            f" {1000 * self.release_s:.1f} ms | {self.fan_in_events:,} |"
        )


HEADER = (
    "| backend | children | enqueue the chord | lease + complete the children |"
    " last child to fan-in leased | fan-in job's events |\n| --- | --- | --- | --- | --- | --- |"
)


async def run(
    backend: EngineBackend, name: str, children: int, batch: int, consumers: int
) -> FanIn:
    """Enqueue the chord, drain it with `consumers` tasks leasing `batch` at a time."""
    messages = [CHILD] * children + [
        JobMessage(job_type="merge", payload_bytes=b"{}", after_earlier=tuple(range(children)))
    ]
    started = time.perf_counter()
    ids = await backend.enqueue_many(CTX, messages)
    enqueued = time.perf_counter()
    merge = ids[-1]
    merge_leases = 0
    last_child_done = 0.0
    merge_leased_at = 0.0
    finished = 0

    async def consume() -> None:
        nonlocal merge_leases, last_child_done, merge_leased_at, finished
        idle = 0
        while finished < children + 1 and idle < 1000:
            leases = await backend.dequeue_many(CTX, ["default"], batch)
            if not leases:
                idle += 1
                await backend.wait_for_change(0.01)
                continue
            idle = 0
            for lease in leases:
                if lease.job_id == merge:
                    merge_leases += 1
                    merge_leased_at = time.perf_counter()
            await asyncio.gather(*(complete(lease) for lease in leases))

    async def complete(lease: LeasedJob) -> None:
        nonlocal finished, last_child_done
        await backend.ack_complete(CTX, lease)
        finished += 1
        if finished == children and lease.job_id != merge:
            last_child_done = time.perf_counter()

    await asyncio.gather(*(consume() for _ in range(consumers)))
    assert merge_leases == 1, f"the fan-in job was leased {merge_leases} times"
    assert await backend.get_status(CTX, merge) is JobStatus.COMPLETED
    history = await backend.history(CTX, merge)
    # Leased only once it had heard of every child (evolve refuses a WAITING lease).
    assert [e.type for e in history[-2:]] == ["leased", "completed"]
    assert sum(e.type == "parent_finished" for e in history) == children
    events = len(history)
    return FanIn(
        backend=name,
        children=children,
        enqueue_s=enqueued - started,
        children_s=last_child_done - enqueued,
        release_s=max(0.0, merge_leased_at - last_child_done),
        fan_in_events=events,
    )


async def measure(name: str, children: int, batch: int = 100, consumers: int = 4) -> FanIn:
    """One run on a fresh backend of kind `name`."""
    if name == "memory":
        async with MemoryBackend() as backend:
            return await run(backend, name, children, batch, consumers)
    if name == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            async with SqliteBackend(Path(folder) / "queue.db") as backend:
                return await run(backend, name, children, batch, consumers)
    schema = f"bench_fan_in_{uuid.uuid4().hex[:12]}"
    try:
        async with PostgresBackend(default_dsn(), schema=schema) as backend:
            return await run(backend, name, children, batch, consumers)
    finally:
        conn = await asyncpg.connect(default_dsn())
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--batch", type=int, default=100, help="jobs leased per dequeue_many")
    parser.add_argument("--consumers", type=int, default=4, help="concurrent consumer tasks")
    args = parser.parse_args(argv)
    print(HEADER)
    for name in args.backends.split(","):
        print(asyncio.run(measure(name, args.children, args.batch, args.consumers)).row())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
