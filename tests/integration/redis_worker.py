"""A worker process on a Redis queue running the crash test's jobs, until SIGTERM.

python -m tests.integration.redis_worker PREFIX CONCURRENCY
"""

from __future__ import annotations

import asyncio
import sys

from dogqueue import Worker
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.redis.backend import default_cluster, default_url
from tests.runtime.crash_app import CRASH_CONFIG, make_adapter


async def main(prefix: str, concurrency: int) -> None:
    async with RedisBackend(
        default_url(),
        prefix=prefix,
        config=CRASH_CONFIG,
        durability="none",
        cluster=default_cluster(),
    ) as backend:
        adapter, context = await make_adapter(backend)
        await Worker(adapter, context=context, concurrency=concurrency).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
