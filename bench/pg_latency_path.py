"""Where an enqueue->start delay goes on PostgreSQL: timestamps along the path of each
job, from the producer's call through its commit, the consumer's NOTIFY, its claim, its
flush and commit, to the start.

    python bench/pg_latency_path.py --jobs 200 --rate 25

One process enqueues `--jobs` at a steady `--rate`; another runs 16 tasks that
`dequeue_many(32)` and `settle_many`, idling in `wait_for_change`, as compare_pg.py's
latency phase does. Both wrap the backend's batch steps to stamp them (wall clock, one
machine); a job's hop is the time from one stamp to the first stamp of the next kind
after the job's call. Percentiles of each hop and of the total are printed; a hop can be
negative (a consumer woken before the producer's own flush returned)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.testing.postgres import drop_schema

#: (kind, wall time) pairs, in the order they happened in one process.
Stamps = list[tuple[str, float]]
#: The consumer's hops, in path order: each is the first stamp of its kind after the call.
CONSUMER_PATH = ("on_ready", "batch<", "claim>", "flush>", "batch>")


def _stamp(stamps: Stamps, owner: Any, name: str, kind: str) -> None:
    """Wrap `owner.name` (a coroutine function, or a plain one) to stamp `kind`."""
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):

        async def stamped(*args: Any, **kwargs: Any) -> Any:
            stamps.append((kind + "<", time.time()))
            result = await original(*args, **kwargs)
            stamps.append((kind + ">", time.time()))
            return result

        setattr(owner, name, stamped)
    else:

        def called(*args: Any, **kwargs: Any) -> Any:
            stamps.append((kind, time.time()))
            return original(*args, **kwargs)

        setattr(owner, name, called)


def _instrument(stamps: Stamps) -> None:
    from dogqueue.backend.postgres import backend, reads

    cls = backend.PostgresBackend
    _stamp(stamps, cls, "_run_batch", "batch")
    _stamp(stamps, cls, "_flush", "flush")
    _stamp(stamps, cls, "_on_ready", "on_ready")
    _stamp(stamps, reads, "batch_time_and_seqs", "time")
    _stamp(stamps, backend, "claim_in_one_trip", "claim")


async def produce(dsn: str, schema: str, jobs: int, rate: float) -> Stamps:
    """Enqueue `jobs` at `rate` per second; the stamps, with one "call" per job."""
    from dogqueue import JobMessage, QueueCtx
    from dogqueue.backend.postgres import PostgresBackend

    stamps: Stamps = []
    _instrument(stamps)
    async with PostgresBackend(dsn, schema=schema) as backend:
        await asyncio.sleep(1.0)  # the consumer is listening
        start = time.perf_counter()
        for number in range(jobs):
            stamps.append(("call", time.time()))
            await backend.enqueue(QueueCtx("t"), JobMessage(job_type="j", payload_bytes=b"{}"))
            await asyncio.sleep(max(0.0, start + (number + 1) / rate - time.perf_counter()))
    return stamps


async def consume(dsn: str, schema: str, jobs: int) -> Stamps:
    """Start `jobs` jobs from 16 tasks; the stamps, with one "start" per job."""
    from dogqueue import Completion, QueueCtx
    from dogqueue.backend.postgres import PostgresBackend

    stamps: Stamps = []
    _instrument(stamps)
    ctx = QueueCtx("t")
    async with PostgresBackend(dsn, schema=schema) as backend:

        async def task() -> None:
            while sum(1 for kind, _ in stamps if kind == "start") < jobs:
                leases = await backend.dequeue_many(ctx, ("default",), 32)
                if not leases:
                    await backend.wait_for_change(0.2)
                    continue
                stamps.extend(("start", time.time()) for _ in leases)
                await backend.settle_many(ctx, [Completion(lease=lease) for lease in leases])

        await asyncio.wait_for(asyncio.gather(*(task() for _ in range(16))), 120 + jobs)
    return stamps


def _child(role: str, dsn: str, schema: str, jobs: int, rate: float, out: Any) -> None:
    work = produce(dsn, schema, jobs, rate) if role == "producer" else consume(dsn, schema, jobs)
    out.put((role, json.dumps(asyncio.run(work))))


def _first_after(stamps: Stamps, kind: str, after: float) -> float:
    return next((at for k, at in stamps if k == kind and at >= after), float("nan"))


def hops(producer: Stamps, consumer: Stamps) -> dict[str, list[float]]:
    """Milliseconds of each hop of each job, by hop name, in path order."""
    calls = [at for kind, at in producer if kind == "call"]
    starts = sorted(at for kind, at in consumer if kind == "start")
    found: dict[str, list[float]] = {}
    for call, started in zip(calls, starts, strict=False):
        points = [("call", call)]
        points += [(f"enqueue {k}", _first_after(producer, k, call)) for k in ("time>", "flush>")]
        points += [(k, _first_after(consumer, k, call)) for k in CONSUMER_PATH]
        points.append(("start", started))
        for (was, at), (now, then) in itertools.pairwise(points):
            found.setdefault(f"{was} -> {now}", []).append((then - at) * 1000)
        found.setdefault("total", []).append((started - call) * 1000)
    return found


def run(dsn: str, jobs: int, rate: float) -> dict[str, list[float]]:
    """Both processes on a fresh schema (dropped afterwards); the hops."""
    schema = f"bench_path_{uuid.uuid4().hex[:8]}"
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    children = [
        spawn.Process(target=_child, args=(role, dsn, schema, jobs, rate, out))
        for role in ("consumer", "producer")
    ]
    try:
        for child in children:
            child.start()
        results = dict(out.get(timeout=300 + jobs / rate) for _ in children)
        for child in children:
            child.join()
    finally:
        asyncio.run(drop_schema(dsn, schema))
    return hops(json.loads(results["producer"]), json.loads(results["consumer"]))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main(argv: list[str] | None = None, echo: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=default_dsn())
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=25.0, help="jobs/s")
    args = parser.parse_args(argv)
    echo("| hop | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|")
    for name, values in run(args.dsn, args.jobs, args.rate).items():
        values = [v for v in values if v == v]  # a hop a job skipped is NaN
        if values:
            echo(
                f"| {name} | {statistics.median(values):.2f} | {percentile(values, 0.9):.2f}"
                f" | {percentile(values, 0.99):.2f} |"
            )


if __name__ == "__main__":
    main()
