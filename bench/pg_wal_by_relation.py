"""Where the PostgreSQL backend's WAL goes: bytes per job of each table and index over
one bulk lifecycle (enqueue_many lists of 100, then dequeue_many(100) + settle_many),
read with pg_walinspect between two WAL positions taken after a CHECKPOINT.

    python bench/pg_wal_by_relation.py --jobs 4800

Records of other sessions on the same server fall in the window too; they are counted
under "other" (their relations are not this run's schema)."""

from __future__ import annotations

import argparse
import asyncio
import re
import uuid
from collections import Counter

import asyncpg

from dogqueue import Completion, JobMessage, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.migrate import quote

TASKS = 16
LIST = 100


async def lifecycle(backend: PostgresBackend, jobs: int) -> None:
    """Enqueue `jobs` in lists of LIST from TASKS tasks, then lease and complete them."""
    ctx = QueueCtx("tenant-1")

    async def produce(lists: int) -> None:
        for _ in range(lists):
            messages = [JobMessage(job_type="j", payload_bytes=b"{}") for _ in range(LIST)]
            await backend.enqueue_many(ctx, messages)

    async def consume() -> None:
        while leases := await backend.dequeue_many(ctx, ("default",), LIST):
            await backend.settle_many(ctx, [Completion(lease=lease) for lease in leases])

    await asyncio.gather(*(produce(jobs // (TASKS * LIST)) for _ in range(TASKS)))
    await asyncio.gather(*(consume() for _ in range(TASKS)))
    await backend.seal()


async def measure(dsn: str, jobs: int) -> tuple[int, Counter[str], Counter[str]]:
    """The jobs run, and WAL bytes and records by relation name."""
    schema = f"bench_wal_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        async with PostgresBackend(dsn, schema=schema, pool_size=8) as backend:
            names = {
                str(node): str(name)
                for node, name in await admin.fetch(
                    "SELECT c.relfilenode, c.relname FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                    schema,
                )
            }
            await admin.execute("CHECKPOINT")
            start = await admin.fetchval("SELECT pg_current_wal_lsn()")
            await lifecycle(backend, jobs)
            end = await admin.fetchval("SELECT pg_current_wal_lsn()")
        rows = await admin.fetch(
            "SELECT record_length, block_ref FROM pg_get_wal_records_info($1, $2)", start, end
        )
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
        await admin.close()
    size: Counter[str] = Counter()
    records: Counter[str] = Counter()
    for length, block_ref in rows:
        found = re.search(r"rel \d+/\d+/(\d+)", block_ref or "")
        name = names.get(found.group(1), "other") if found else "no relation (commits, ...)"
        size[name] += int(length)
        records[name] += 1
    return jobs // (TASKS * LIST) * TASKS * LIST, size, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=default_dsn())
    parser.add_argument("--jobs", type=int, default=4800)
    args = parser.parse_args()
    jobs, size, records = asyncio.run(measure(args.dsn, args.jobs))
    print(f"{jobs} jobs, {sum(size.values()) / jobs:,.0f} WAL bytes per job")
    print("| relation | bytes/job | records/job |\n|---|---:|---:|")
    for name, total in size.most_common():
        print(f"| {name} | {total / jobs:,.0f} | {records[name] / jobs:.2f} |")


if __name__ == "__main__":
    main()
