"""Server memory of a Redis queue that runs for months: per job without archival, and
what stays on the server after each archival (`dogqueue.backend.redis_archive`).

On a redis-server of its own (`appendfsync everysec`), --rounds times: N no-op jobs run
their lifecycle (bench/compare_redis.py's dogqueue runner), then every job that finished
moves to an archive file. Per round: `INFO memory` used_memory over the empty server's,
and the `MEMORY USAGE` sum of the queue's keys, after the run and after the archival,
and the archival's speed.

    python bench/redis_archive.py --jobs 10000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import timedelta
from typing import Any

import redis.asyncio as redis

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.compare_redis import Server, run_dogqueue
from dogqueue.backend.kit.rows import from_micros
from dogqueue.backend.redis_archive import archive_before


async def key_bytes(client: Any) -> int:
    """The MEMORY USAGE sum of the queue's keys."""
    total = 0
    async for key in client.scan_iter(match="{bench*", count=1000):
        total += int(await client.memory_usage(key, samples=0) or 0)
    return total


async def used(client: Any) -> int:
    return int((await client.info("memory"))["used_memory"])


async def main_async(args: argparse.Namespace) -> list[str]:
    server = Server("everysec")
    target = os.path.join(tempfile.mkdtemp(prefix="dq-archive-"), "archive.db")
    lines = [
        f"{'round':>5} {'on server':>9} {'mem/job run':>11} {'keys/job run':>12}"
        f" {'mem after':>10} {'keys after':>10} {'archived/s':>10}"
    ]
    try:
        await server.ready()
        client: Any = redis.Redis.from_url(server.url)
        try:
            empty = await used(client)
            for round_ in range(1, args.rounds + 1):
                await run_dogqueue(server.url, args.jobs)
                ran, ran_keys = await used(client) - empty, await key_bytes(client)
                seconds, micros = await client.time()
                cut = from_micros(seconds * 1_000_000 + micros) + timedelta(seconds=1)
                started = time.perf_counter()
                result = await archive_before(server.url, target, cut, cut, prefix="bench")
                rate = result.jobs / (time.perf_counter() - started)
                if result.jobs != args.jobs:
                    raise RuntimeError(f"archived {result.jobs} of {args.jobs} finished jobs")
                kept, kept_keys = await used(client) - empty, await key_bytes(client)
                lines.append(
                    f"{round_:>5} {args.jobs:>9,} {ran / args.jobs:>11,.0f}"
                    f" {ran_keys / args.jobs:>12,.0f} {kept:>10,} {kept_keys:>10,} {rate:>10,.0f}"
                )
        finally:
            await client.aclose()
    finally:
        server.stop()
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    lines = asyncio.run(main_async(parser.parse_args(argv)))
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
