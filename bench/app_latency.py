"""Cross-process latencies with the worker's defaults (5-minute lease, cancel check):
cancel_job in one process -> the job's task cancelled in a `dogqueue worker` process,
and enqueue -> job started in that process.

    python bench/app_latency.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dogqueue import Backend, Job, QueueAdapter, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script
from bench.worker_latency import process_latencies, report

T = QueueCtx("bench")


def stamp(path: Path) -> None:
    path.write_text(repr(time.time()))


class Hang(Job[Path, None]):
    """Runs until cancelled; stamps the wall-clock time it started and was cancelled."""

    JOB_TYPE = "hang"
    name: str

    async def execute(self, ctx: Path) -> None:
        stamp(ctx / f"{self.name}.started")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stamp(ctx / f"{self.name}.cancelled")
            raise


async def make_adapter(backend: Backend) -> tuple[QueueAdapter[Path], Path]:
    """The factory of the worker process."""
    adapter: QueueAdapter[Path] = QueueAdapter(backend)
    await adapter.register_job(Hang)
    return adapter, Path(os.environ.get("DOGQUEUE_BENCH_DIR", "."))


def read_stamp(path: Path) -> float:
    return float(path.read_text())


def exists(path: Path) -> bool:
    return path.exists()


async def appeared(path: Path) -> None:
    while not exists(path):  # noqa: ASYNC110 (polling another process's file)
        await asyncio.sleep(0.002)


async def cancel_latencies(directory: Path, rounds: int) -> list[float]:
    db = directory / "cancel.db"
    env = dict(os.environ, DOGQUEUE_BENCH_DIR=str(directory))
    env["PYTHONPATH"] = str(Path(__file__).parent)
    command = [sys.executable, "-m", "dogqueue", "worker", "app_latency:make_adapter"]
    worker = subprocess.Popen([*command, "--db", str(db), "--log-level", "WARNING"], env=env)  # noqa: ASYNC220 (a long-lived child)
    latencies = []
    try:
        async with SqliteBackend(db) as backend:
            adapter = (await make_adapter(backend))[0]
            for n in range(rounds):
                job_id = await adapter.enqueue(T, Hang(name=str(n)))
                await appeared(directory / f"{n}.started")
                await asyncio.sleep(random.uniform(0.0, 0.6))  # any point of a check period
                before = time.time()
                await adapter.cancel_job(T, job_id)
                await appeared(directory / f"{n}.cancelled")
                await asyncio.sleep(0.01)  # the stamp is written
                latencies.append(read_stamp(directory / f"{n}.cancelled") - before)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait()
    return latencies


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        report(
            "cancel (other process) -> task cancelled, 5 min lease",
            await cancel_latencies(directory, rounds),
        )
        report(
            "enqueue -> job started in a worker process",
            await process_latencies(directory / "process.db", rounds * 3),
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
