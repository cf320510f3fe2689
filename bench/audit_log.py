"""Audit benchmarks on a large SQLite log: build one, then time opening it plus the first
dequeue, replaying it and verifying it. Figures go to bench/README.md and README.md.

    python bench/audit_log.py build /tmp/big.db --events 1000000
    python bench/audit_log.py open-dequeue /tmp/big.db
    python bench/audit_log.py verify /tmp/big.db
    dogqueue replay --db /tmp/big.db
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

from dogqueue import FakeClock, JobMessage, QueueCtx, utc_now
from dogqueue.audit.verify import Report, verify_log
from dogqueue.backend.locate import open_log
from dogqueue.backend.sqlite import SqliteBackend

#: Jobs per enqueue_many / dequeue_many round.
BATCH = 1000
#: Jobs left ready at the end, so the first dequeue has work.
READY_AT_END = 1000


async def build(path: str, events: int, tenants: int) -> None:
    """About `events` events: jobs enqueued, leased and completed (3 events each), then
    READY_AT_END jobs left enqueued."""
    clock = FakeClock(utc_now() - timedelta(days=1))  # in the past: the jobs are due
    payload = b'{"to": "a@example.com"}'
    started = time.perf_counter()
    async with SqliteBackend(path, clock=clock) as backend:
        written = 0
        round_number = 0
        while written < events - READY_AT_END:
            ctx = QueueCtx(f"tenant-{round_number % tenants}")
            round_number += 1
            messages = [JobMessage(job_type="email", payload_bytes=payload)] * BATCH
            await backend.enqueue_many(ctx, messages)
            clock.advance(timedelta(milliseconds=1))
            leases = await backend.dequeue_many(ctx, ["default"], BATCH)
            await asyncio.gather(*(backend.ack_complete(ctx, lease) for lease in leases))
            written += 3 * BATCH
        ready = [JobMessage(job_type="email", payload_bytes=payload)] * READY_AT_END
        await backend.enqueue_many(QueueCtx("tenant-0"), ready)
        written += READY_AT_END
    seconds = time.perf_counter() - started
    print(f"built {written} events in {seconds:.1f} s ({written / seconds:,.0f} events/s)")


async def open_and_dequeue(path: str) -> None:
    """Time from constructing the backend to holding the first lease."""
    started = time.perf_counter()
    backend = SqliteBackend(path)
    try:
        await backend.open()
        lease = await backend.dequeue(QueueCtx("tenant-0"), ["default"])
        seconds = time.perf_counter() - started
        if lease is None:
            raise SystemExit("no job was ready: build the log with this script")
        await backend.release(QueueCtx("tenant-0"), lease)
    finally:
        await backend.close()
    print(f"open + first dequeue: {seconds * 1000:.0f} ms")


def verify(path: str) -> None:
    """Time a full verification."""

    async def run() -> Report:
        log = open_log(path)
        try:
            return await verify_log(log)
        finally:
            await log.close()

    started = time.perf_counter()
    report = asyncio.run(run())
    seconds = time.perf_counter() - started
    print(
        f"verified {report.events} events in {seconds:.1f} s"
        f" ({report.events / seconds:,.0f} events/s): {'OK' if report.ok else report.problems}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["build", "open-dequeue", "verify"])
    parser.add_argument("path")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10)
    args = parser.parse_args()
    if args.action == "build":
        asyncio.run(build(args.path, args.events, args.tenants))
    elif args.action == "open-dequeue":
        asyncio.run(open_and_dequeue(args.path))
    else:
        verify(args.path)


if __name__ == "__main__":
    main()
