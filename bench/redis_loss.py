"""How much acknowledged work a SIGKILLed redis-server loses, for bench/compare_redis.py:
dogqueue enqueues from 16 tasks on a server of its own with the given `appendfsync`,
the server is killed with SIGKILL mid-run and restarted on its files, and every job
whose enqueue had returned is looked for. The loss window is how long before the kill
the earliest lost job was acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis.asyncio as redis

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.redis import RedisBackend

CTX = QueueCtx("loss")
TASKS = 16


def _start(port: int, directory: str, fsync: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory),
            *("--save", "", "--appendonly", "yes", "--appendfsync", fsync),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _until_up(url: str) -> None:
    client: Any = redis.Redis.from_url(url)
    try:
        for _ in range(600):
            try:
                if (await client.info("persistence")).get("loading", 0) == 0:
                    return
            except (redis.RedisError, OSError):
                pass
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise RuntimeError("redis-server did not start")


async def measure_loss(fsync: str, seconds: float = 3.0) -> tuple[int, int, float]:
    """(jobs acknowledged, of them lost, loss window in seconds) for one kill."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    directory = tempfile.mkdtemp(prefix="dq-bench-loss-")
    url = f"redis://127.0.0.1:{port}/0"
    server = _start(port, directory, fsync)
    acked: dict[str, float] = {}
    try:
        await _until_up(url)
        backend = RedisBackend(url, prefix="loss")
        await backend.open()
        stop = time.monotonic() + seconds

        async def enqueue() -> None:
            message = JobMessage(job_type="t", payload_bytes=b"{}")
            while time.monotonic() < stop:
                job_id = await backend.enqueue(CTX, message)
                acked[job_id] = time.monotonic()

        tasks = [asyncio.ensure_future(enqueue()) for _ in range(TASKS)]
        await asyncio.sleep(seconds / 2)
        os.kill(server.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        server.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(backend.close(), return_exceptions=True)
        acked = {job: at for job, at in acked.items() if at <= killed_at}
        server = _start(port, directory, fsync)
        await _until_up(url)
        async with RedisBackend(url, prefix="loss") as again:
            kept = {job_id for _, job_id in await again.projected_jobs()}
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            server.wait()
    lost = [at for job, at in acked.items() if job not in kept]
    return len(acked), len(lost), (killed_at - min(lost)) if lost else 0.0
