"""dogqueue on Redis beside the Redis queues people use, in one run, one server.

Systems, one after the other on the same redis-server (started here on a free loopback
port with `appendonly yes` and `appendfsync` as --fsync says, unless --url names one), in
1 process or in --processes N (each on a queue, or dogqueue tenant, of its own):

- **bare**: a plain redis-py loop, the physical reference: per job it writes what
  dogqueue writes (three events to a stream, the job's state, its ready and lease
  entries) in pipelines of 100, without any check, decide or chain.
- **dogqueue**: `RedisBackend`; 16 producer tasks call `enqueue`, 16 consumer tasks call
  `dequeue_many(32)` and acknowledge each batch with one `settle_many`.
- **saq**: its Worker (concurrency 16), jobs enqueued one call at a time from 16 tasks.
- **arq**: its Worker (max_jobs 16, poll_delay 0.01), jobs enqueued likewise.
- **bullmq** (BullMQ's Python port) and **streaq**: their Workers (concurrency 16), jobs
  enqueued likewise (bench/redis_peers.py).

Lifecycle jobs/s: N jobs enqueued, then all consumed (no-op jobs); server memory and
AOF bytes per job are the `INFO` deltas over the run (every job kept, as each system
keeps it by default). --latency RATE adds dogqueue's enqueue->start p50/p99 at that rate
(bench/redis_latency.py); --loss measures how much acknowledged work `everysec` loses
when the server is SIGKILLed (bench/redis_loss.py).

    pip install -e '.[bench]'
    python bench/compare_redis.py                  # 10,000 jobs
    python bench/compare_redis.py --jobs 500 --only bare,dogqueue
    python bench/compare_redis.py --fsync always --processes 4 --latency 200
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.redis_latency import measure_latency  # noqa: E402 (after the path)
from bench.redis_loss import measure_loss  # noqa: E402
from bench.redis_peers import TASKS, in_tasks, run_bullmq, run_streaq  # noqa: E402

SYSTEMS = ("bare", "dogqueue", "saq", "arq", "bullmq", "streaq")
PAYLOAD = b'{"n": 1}'


@dataclass
class Measurement:
    """One system's run."""

    system: str
    jobs: int
    seconds: float
    completed: int
    memory_per_job: float
    aof_per_job: float

    @property
    def per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


def missing(name: str) -> str | None:
    """Why `name` cannot run here (None: it can)."""
    module = {"saq": "saq", "arq": "arq", "bullmq": "bullmq", "streaq": "streaq"}.get(name)
    if module is not None and importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


class Server:
    """A redis-server of the benchmark's own, stopped by its pid."""

    def __init__(self, fsync: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.directory = tempfile.mkdtemp(prefix="dq-bench-redis-")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.directory,
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                fsync,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    async def ready(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(300):
                try:
                    await client.ping()
                    return
                except (redis.RedisError, OSError):
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


async def run_bare(url: str, n: int, queue: str = "bench") -> int:
    client: Any = redis.Redis.from_url(url)
    event = b"x" * 160
    log, jobs, ready, leases = (f"{{bare:{queue}}}:{name}" for name in ("log", "jobs", "r", "l"))
    try:
        for start in range(0, n, 100):
            async with client.pipeline(transaction=False) as pipe:
                for i in range(start, min(n, start + 100)):
                    pipe.xadd(log, {"j": i, "v": 1, "t": "enqueued", "d": event})
                    pipe.hset(jobs, str(i), event)
                    pipe.zadd(ready, {str(i): i})
                await pipe.execute()
        done = 0
        while True:
            ids = [m for m, _ in await client.zpopmin(ready, 100)]
            if not ids:
                return done
            async with client.pipeline(transaction=False) as pipe:
                for job in ids:
                    pipe.xadd(log, {"j": job, "v": 2, "t": "leased", "d": event})
                    pipe.zadd(leases, {job: time.time() + 300})
                    pipe.hset(jobs, job, event)
                await pipe.execute()
            async with client.pipeline(transaction=False) as pipe:
                for job in ids:
                    pipe.xadd(log, {"j": job, "v": 3, "t": "completed", "d": event})
                    pipe.zrem(leases, job)
                    pipe.hset(jobs, job, event)
                await pipe.execute()
            done += len(ids)
    finally:
        await client.aclose()


async def run_dogqueue(url: str, n: int, queue: str = "bench") -> int:
    from dogqueue import Completion, QueueCtx
    from dogqueue.backend.redis import RedisBackend
    from dogqueue.core.message import JobMessage

    ctx = QueueCtx(queue)  # a tenant per process
    async with RedisBackend(url, prefix="bench") as backend:

        async def enqueue(_: int) -> None:
            await backend.enqueue(ctx, JobMessage(job_type="noop", payload_bytes=PAYLOAD))

        await in_tasks(n, enqueue)
        done = 0

        async def consume() -> None:
            nonlocal done
            while True:
                leases = await backend.dequeue_many(ctx, ["default"], 32)
                if not leases:
                    return
                await backend.settle_many(ctx, [Completion(lease=lease) for lease in leases])
                done += len(leases)

        await asyncio.gather(*(consume() for _ in range(TASKS)))
        return done


async def run_saq(url: str, n: int, queue: str = "bench") -> int:
    from saq import Queue, Worker

    done = 0
    finished = asyncio.Event()

    async def noop(ctx: Any) -> None:
        nonlocal done
        done += 1
        if done >= n:
            finished.set()

    saq_queue = Queue.from_url(url, name=queue)
    await saq_queue.connect()

    async def enqueue(_: int) -> None:
        await saq_queue.enqueue("noop")

    await in_tasks(n, enqueue)
    worker = Worker(saq_queue, functions=[("noop", noop)], concurrency=16)
    runner = asyncio.ensure_future(worker.start())
    await finished.wait()
    await worker.stop()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await saq_queue.disconnect()
    return done


async def run_arq(url: str, n: int, queue: str = "bench") -> int:
    # arq 0.28 passes redis-py options that redis-py 8 deprecates (it pins redis < 6).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return await _run_arq(url, n, queue)


async def _run_arq(url: str, n: int, queue: str) -> int:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    done = 0

    async def noop(ctx: Any) -> None:
        nonlocal done
        done += 1

    settings = RedisSettings.from_dsn(url)
    pool = await create_pool(settings, default_queue_name=queue)

    async def enqueue(_: int) -> None:
        await pool.enqueue_job("noop")

    await in_tasks(n, enqueue)
    worker = Worker(
        functions=[func(noop, name="noop")],
        redis_settings=settings,
        queue_name=queue,
        burst=True,
        max_jobs=16,
        poll_delay=0.01,
        keep_result=0,
        handle_signals=False,
    )
    await worker.async_run()
    await worker.close()
    await pool.aclose()
    return done


RUNNERS: dict[str, Callable[[str, int, str], Coroutine[Any, Any, int]]] = {
    "bare": run_bare,
    "dogqueue": run_dogqueue,
    "saq": run_saq,
    "arq": run_arq,
    "bullmq": run_bullmq,
    "streaq": run_streaq,
}
PEERS = ("saq", "arq", "bullmq", "streaq")


async def in_processes(name: str, url: str, n: int, processes: int) -> int:
    """Run `name` in `processes` processes, each on a queue (or tenant) of its own with
    n / processes jobs, started together once every process has imported its code."""
    children = [
        subprocess.Popen(  # noqa: ASYNC220 (started before the timed part)
            [*child_command(name, url, n // processes), "--queue", f"p{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for i in range(processes)
    ]
    loop = asyncio.get_running_loop()
    for child in children:
        assert child.stdout is not None
        assert (await loop.run_in_executor(None, child.stdout.readline)).strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [await loop.run_in_executor(None, child.communicate) for child in children]
    return sum(int(out) for out, _ in outputs)


def child_command(name: str, url: str, n: int) -> list[str]:
    """The command of one process of `in_processes` (its queue still to add)."""
    return [sys.executable, __file__, "--child", name, "--url", url, "--jobs", str(n)]


def run_child(args: argparse.Namespace) -> None:
    """One process of `in_processes`: ready, then run on "go", then print the count."""
    print("ready", flush=True)
    sys.stdin.readline()
    print(asyncio.run(RUNNERS[args.child](args.url, args.jobs, args.queue)), flush=True)


async def measure(name: str, url: str, n: int, processes: int = 1) -> Measurement:
    """Run one system's lifecycle of `n` jobs on an emptied server."""
    client: Any = redis.Redis.from_url(url)
    try:
        await client.flushall()
        await client.execute_command("BGREWRITEAOF")
        await asyncio.sleep(0.5)
        before = await client.info()
        started = time.perf_counter()
        if processes == 1:
            completed = await RUNNERS[name](url, n, "bench")
        else:
            completed = await in_processes(name, url, n, processes)
        seconds = time.perf_counter() - started
        after = await client.info()
    finally:
        await client.aclose()
    return Measurement(
        system=name,
        jobs=n,
        seconds=seconds,
        completed=completed,
        memory_per_job=(after["used_memory"] - before["used_memory"]) / n,
        aof_per_job=(after.get("aof_current_size", 0) - before.get("aof_current_size", 0)) / n,
    )


def table(results: list[Measurement]) -> str:
    """The results as a text table, with ratios against the bare loop and the fastest peer."""
    by = {m.system: m for m in results}
    peers = [m.per_s for m in results if m.system in PEERS]
    head = ("system", "jobs/s", "vs bare", "vs best peer", "mem B/job", "AOF B/job")
    lines = ["{:10} {:>9} {:>8} {:>13} {:>10} {:>10}".format(*head)]
    for m in results:
        bare = f"{m.per_s / by['bare'].per_s:.0%}" if "bare" in by else "-"
        peer = f"{m.per_s / max(peers):.2f}x" if peers else "-"
        memory, aof = f"{m.memory_per_job:,.0f}", f"{m.aof_per_job:,.0f}"
        lines.append(f"{m.system:10} {m.per_s:9,.0f} {bare:>8} {peer:>13} {memory:>10} {aof:>10}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Measurement]:
    server = None if args.url else Server(args.fsync)
    try:
        url = args.url
        if server is not None:
            await server.ready()
            url = server.url
        results = []
        for name in args.only.split(","):
            reason = missing(name)
            if reason is not None:
                print(f"{name}: skipped ({reason})", file=sys.stderr)
                continue
            results.append(await measure(name, url, args.jobs, args.processes))
        if args.loss:
            acked, lost, window = await measure_loss(args.fsync)
            print(
                f"appendfsync {args.fsync}, server SIGKILLed mid-run: {lost:,} of {acked:,}"
                f" acknowledged enqueues lost (window {window * 1e3:.0f} ms)"
            )
        if args.latency:
            p50, p99 = await asyncio.to_thread(
                measure_latency, url, args.latency_jobs, args.latency
            )
            print(
                f"dogqueue enqueue->start at {args.latency:g} jobs/s ({args.latency_jobs:,} jobs,"
                f" worker and producer in two processes): p50 {p50 * 1e3:.1f} ms,"
                f" p99 {p99 * 1e3:.1f} ms"
            )
        return results
    finally:
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> list[Measurement]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--only", default=",".join(SYSTEMS))
    parser.add_argument("--fsync", default="everysec", choices=("everysec", "always", "no"))
    parser.add_argument("--url", default=None, help="a server to use instead of starting one")
    parser.add_argument("--processes", type=int, default=1, help="each on a queue of its own")
    parser.add_argument("--latency", type=float, default=0, help="also: enqueue->start at RATE/s")
    parser.add_argument("--latency-jobs", type=int, default=2_000)
    parser.add_argument("--loss", action="store_true", help="also: what a SIGKILL loses")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--queue", default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args)
        return []
    results = asyncio.run(main_async(args))
    print(
        f"{args.jobs:,} no-op jobs, {args.processes} process(es), {TASKS} tasks each,"
        f" appendfsync {args.fsync}"
    )
    print(table(results))
    return results


if __name__ == "__main__":
    main()
