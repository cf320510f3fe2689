"""Cost of observability on the hot path and of folding the log into metrics.

    python bench/observability_overhead.py            # all modes, each in a fresh process

Modes: `untraced` (adapter.enqueue's old path: backend.enqueue of message_for(job)),
`no-otel` (adapter.enqueue with opentelemetry made unimportable), `otel-idle`
(opentelemetry-api installed, no provider configured), `otel-sdk` (an SDK provider with a
no-op processor: spans are created and contexts stored). Plus `fold`: events folded per
second by MetricsReader on the memory backend (`fold`) and on SQLite (`fold-sqlite`).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

N = 20_000


class _BlockOtel:
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] == "opentelemetry":
            raise ImportError(name)


async def _enqueue_rate(mode: str) -> float:
    if mode == "no-otel":
        sys.meta_path.insert(0, _BlockOtel())
    from dogqueue import Job, QueueAdapter, QueueCtx
    from dogqueue.backend.memory import MemoryBackend
    from dogqueue.observability import tracing

    if mode == "otel-sdk":
        from opentelemetry.sdk.trace import TracerProvider

        tracing.set_tracer_provider(TracerProvider())

    class Ping(Job[None, None]):
        JOB_TYPE = "ping"
        n: int

        async def execute(self, ctx: None) -> None:
            return None

    ctx = QueueCtx("t")
    async with MemoryBackend() as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(Ping)
        started = time.perf_counter()
        for i in range(N):
            if mode == "untraced":
                await backend.enqueue(ctx, adapter.message_for(Ping(n=i)))
            else:
                await adapter.enqueue(ctx, Ping(n=i))
        return N / (time.perf_counter() - started)


async def _fold_rate(kind: str) -> float:
    import tempfile
    from pathlib import Path

    from dogqueue import JobMessage, QueueCtx
    from dogqueue.backend.memory import MemoryBackend
    from dogqueue.backend.sqlite import SqliteBackend
    from dogqueue.observability import MetricsReader

    ctx = QueueCtx("t")
    directory = tempfile.mkdtemp()
    made = MemoryBackend() if kind == "fold" else SqliteBackend(Path(directory) / "q.db")
    async with made as backend:
        for _ in range(10):
            await backend.enqueue_many(
                ctx, [JobMessage(job_type="x", payload_bytes=b"{}") for _ in range(N // 2)]
            )
        for _ in range(N // 2):
            lease = await backend.dequeue(ctx, ["default"])
            assert lease is not None
            await backend.ack_complete(ctx, lease)
        events = len(await backend.read_events())
        started = time.perf_counter()
        await MetricsReader(backend).snapshot()
        return events / (time.perf_counter() - started)


def main() -> None:
    if len(sys.argv) == 2:
        mode = sys.argv[1]
        folding = mode.startswith("fold")
        rate = asyncio.run(_fold_rate(mode) if folding else _enqueue_rate(mode))
        unit = "events read and folded/s" if folding else "enqueues/s"
        print(f"{mode:10s} {rate:12,.0f} {unit}")
        return
    for mode in ("untraced", "no-otel", "otel-idle", "otel-sdk", "fold", "fold-sqlite"):
        subprocess.run([sys.executable, __file__, mode], check=True)


if __name__ == "__main__":
    main()
