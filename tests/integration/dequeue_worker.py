"""A worker process for the multi-process tests: leases and completes jobs from a SQLite
file until the queue stays empty, printing each leased job id as a line.

It first opens the file, prints `ready` and waits for a line on stdin, so that every
process starts leasing together (one whose open takes longer must not leave another
to drain the queue alone)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from dogqueue import QueueCtx
from dogqueue.backend.sqlite import SqliteBackend


async def main(path: str, tenants: list[str]) -> None:
    async with SqliteBackend(path) as backend:
        await backend.next_run_at(["default"], tenants)  # opened and caught up
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        idle_rounds = 0
        while idle_rounds < 20:
            got = False
            for tenant in tenants:
                ctx = QueueCtx(tenant)
                leases = await asyncio.gather(
                    *(
                        backend.dequeue(ctx, ["default"], lease_duration=timedelta(minutes=10))
                        for _ in range(4)
                    )
                )
                for lease in leases:
                    if lease is None:
                        continue
                    got = True
                    print(lease.job_id, flush=True)
                    await backend.ack_complete(ctx, lease, b"1")
            idle_rounds = 0 if got else idle_rounds + 1
            if not got:
                await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2].split(",")))
