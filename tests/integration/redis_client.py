"""One process of the many-process tests on a Redis queue.

python -m tests.integration.redis_client URL PREFIX lease TENANTS...
    lease and complete jobs of every tenant until none is left; print how many
python -m tests.integration.redis_client URL PREFIX key TENANT KEY
    enqueue one job with the idempotency key; print its id, or "exists JOB_ID"
"""

from __future__ import annotations

import asyncio
import sys

from dogqueue import JobAlreadyExists, JobMessage, QueueCtx
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.redis.backend import default_cluster


async def lease_all(backend: RedisBackend, tenants: list[str]) -> None:
    done = 0
    idle = 0
    while idle < 3:
        found = False
        for tenant in tenants:
            ctx = QueueCtx(tenant)
            for lease in await backend.dequeue_many(ctx, ["default"], 8):
                await backend.ack_complete(ctx, lease)
                done += 1
                found = True
        idle = 0 if found else idle + 1
    print(done)


async def enqueue_key(backend: RedisBackend, tenant: str, key: str) -> None:
    message = JobMessage(job_type="t", payload_bytes=b"{}", idempotency_key=key)
    try:
        print(await backend.enqueue(QueueCtx(tenant), message))
    except JobAlreadyExists as error:
        print("exists", error.job_id)


async def main(url: str, prefix: str, mode: str, args: list[str]) -> None:
    cluster = default_cluster()
    async with RedisBackend(url, prefix=prefix, durability="none", cluster=cluster) as backend:
        if mode == "lease":
            await lease_all(backend, args)
        else:
            await enqueue_key(backend, args[0], args[1])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
