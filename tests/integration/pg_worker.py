"""A worker process on a PostgreSQL queue running the crash test's jobs, until SIGTERM.

python -m tests.integration.pg_worker SCHEMA CONCURRENCY
"""

from __future__ import annotations

import asyncio
import sys

from dogqueue import Worker
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from tests.runtime.crash_app import CRASH_CONFIG, make_adapter


async def main(schema: str, concurrency: int) -> None:
    async with PostgresBackend(default_dsn(), schema=schema, config=CRASH_CONFIG) as backend:
        adapter, context = await make_adapter(backend)
        await Worker(adapter, context=context, concurrency=concurrency).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
