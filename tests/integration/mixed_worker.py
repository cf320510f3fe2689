"""A process of the mixed multi-process test: on a shared SQLite file it enqueues jobs
(alone and in batches), leases (alone and several at once), completes, fails with a
retry, and cancels, deciding each step from what its own backend object knows. It
prints what each call returned, one line each: `E id`, `L id token`, `A id` (completed),
`F id` (failed, retried), `R id` (an ack refused: the job was canceled), `C id status`."""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import timedelta

from dogqueue import JobCanceled, JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend

CTX = QueueCtx("acme")
ROUNDS = 40
LEASE = timedelta(minutes=10)


async def main(path: str, seed: int) -> None:
    draw = random.Random(seed)
    message = JobMessage(job_type="t", payload_bytes=b"{}")
    async with SqliteBackend(path) as backend:
        mine: list[str] = []
        for _ in range(ROUNDS):
            if draw.random() < 0.5:
                ids = [await backend.enqueue(CTX, message)]
            else:
                ids = await backend.enqueue_many(CTX, [message] * draw.randint(2, 6))
            mine.extend(ids)
            for job_id in ids:
                print("E", job_id, flush=True)
            leases = await asyncio.gather(
                *(backend.dequeue(CTX, ["default"], lease_duration=LEASE) for _ in range(3))
            )
            if draw.random() < 0.3 and mine:
                victim = mine[draw.randrange(len(mine))]
                print("C", victim, (await backend.cancel_job(CTX, victim)).value, flush=True)
            for lease in leases:
                if lease is None:
                    continue
                print("L", lease.job_id, lease.lease_token, flush=True)
                try:
                    if draw.random() < 0.2:
                        await backend.ack_fail(CTX, lease, "boom")
                        print("F", lease.job_id, flush=True)
                    else:
                        await backend.ack_complete(CTX, lease)
                        print("A", lease.job_id, flush=True)
                except JobCanceled:
                    print("R", lease.job_id, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
