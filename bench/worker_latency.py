"""Worker latencies: cancel_job -> running task cancelled (in-process notification vs
heartbeats only), and a commit by another connection -> an idle waiter woken.

    python bench/worker_latency.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from dogqueue import Backend, Job, JobMessage, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.sqlite import SqliteBackend

T = QueueCtx("bench")


class Probe:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled_at = 0.0
        self.cancelled = asyncio.Event()


class Hang(Job[Probe, None]):
    JOB_TYPE = "hang"

    async def execute(self, ctx: Probe) -> None:
        ctx.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            ctx.cancelled_at = time.perf_counter()
            ctx.cancelled.set()
            raise


async def cancel_latencies(path: Path, rounds: int, *, fast_cancel: bool) -> list[float]:
    latencies = []
    async with SqliteBackend(path) as backend:
        adapter: QueueAdapter[Probe] = QueueAdapter(backend)
        await adapter.register_job(Hang)
        for _ in range(rounds):
            probe = Probe()
            job_id = await adapter.enqueue(T, Hang())
            async with Worker(
                adapter,
                context=probe,
                handle_signals=False,
                lease_duration=timedelta(seconds=3),
                fast_cancel=fast_cancel,
            ):
                await probe.started.wait()
                await asyncio.sleep(random.uniform(0.05, 1.0))  # any point of a beat
                before = time.perf_counter()
                await adapter.cancel_job(T, job_id)
                await probe.cancelled.wait()
                latencies.append(probe.cancelled_at - before)
    return latencies


async def wake_latencies(path: Path, rounds: int) -> list[float]:
    latencies = []
    async with SqliteBackend(path) as watcher, SqliteBackend(path) as other:
        for _ in range(rounds):
            waiting = asyncio.create_task(watcher.wait_for_change(60))
            await asyncio.sleep(0.03)
            await other.enqueue(T, JobMessage(job_type="x", payload_bytes=b"{}"))
            committed = time.perf_counter()
            await waiting
            latencies.append(time.perf_counter() - committed)
    return latencies


class Stamp(Job[Path, None]):
    """Records how long after `sent` (wall clock) it started running."""

    JOB_TYPE = "stamp"
    sent: float

    async def execute(self, ctx: Path) -> None:
        with ctx.open("a") as out:
            out.write(f"{time.time() - self.sent}\n")


async def make_adapter(backend: Backend) -> tuple[QueueAdapter[Path], Path]:
    """The factory of the worker process in `process_latencies`."""
    adapter: QueueAdapter[Path] = QueueAdapter(backend)
    await adapter.register_job(Stamp)
    return adapter, Path(os.environ.get("DOGQUEUE_BENCH_OUT", "stamps"))


async def process_latencies(path: Path, rounds: int) -> list[float]:
    """Enqueue here, run in a `dogqueue worker` process: enqueue -> job started."""
    out = path.with_suffix(".stamps")
    env = dict(os.environ, DOGQUEUE_BENCH_OUT=str(out), PYTHONPATH=str(Path(__file__).parent))
    command = [sys.executable, "-m", "dogqueue", "worker", "worker_latency:make_adapter"]
    worker = subprocess.Popen([*command, "--db", str(path), "--log-level", "WARNING"], env=env)  # noqa: ASYNC220 (a long-lived child)
    try:
        async with SqliteBackend(path) as backend:
            adapter = (await make_adapter(backend))[0]
            for done in range(rounds + 1):  # the first one waits for the worker to start
                await asyncio.sleep(random.uniform(0.05, 0.2))
                await adapter.enqueue(T, Stamp(sent=time.time()))
                while not out.exists() or len(out.read_text().split()) <= done:  # noqa: ASYNC110 (polling another process)
                    await asyncio.sleep(0.005)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait()
    return [float(line) for line in out.read_text().split()[1:]]


def report(name: str, values: list[float]) -> None:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"{name:<48} median {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms  n={len(ms)}")


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        report(
            "cancel -> task cancelled, in-process wake-up",
            await cancel_latencies(path, rounds, fast_cancel=True),
        )
        report(
            "cancel -> task cancelled, heartbeats only (1s)",
            await cancel_latencies(path, rounds, fast_cancel=False),
        )
        report(
            "other connection commits -> idle waiter wakes", await wake_latencies(path, rounds * 3)
        )
        report(
            "enqueue -> job started in a worker process",
            await process_latencies(Path(directory) / "process.db", rounds * 3),
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
