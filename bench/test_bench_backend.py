"""Each backend operation on a SQLite file, at queue depths of ready jobs.

Dequeue and ack must cost the same at 1,000 and at 1,000,000 ready jobs: every query
they run is an index range or a primary-key lookup. `python bench/plot_depth.py` draws
the curve from a `--benchmark-json` file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bench.workload import CTX, MESSAGE
from dogqueue import LeasedJob
from dogqueue.backend.sqlite import SqliteBackend

T = TypeVar("T")
#: Jobs per enqueue_many while filling the queue (one transaction each).
FILL_BATCH = 10_000
QUEUES = ["default"]


class Queue:
    """An open SqliteBackend holding `depth` ready jobs, driven from sync benchmarks."""

    def __init__(self, path: Path, depth: int) -> None:
        self.runner = asyncio.Runner()
        self.backend = SqliteBackend(path)
        self.run(self.backend.open())
        self.depth = depth
        for start in range(0, depth, FILL_BATCH):
            count = min(FILL_BATCH, depth - start)
            self.run(self.backend.enqueue_many(CTX, [MESSAGE] * count))

    def run(self, step: Awaitable[T]) -> T:
        async def awaited() -> T:
            return await step

        return self.runner.run(awaited())

    def call(self, make: Callable[[], Awaitable[T]]) -> Callable[[], T]:
        """A sync callable that runs a fresh `make()` to completion each time."""
        return lambda: self.run(make())

    def close(self) -> None:
        self.run(self.backend.close())
        self.runner.close()


@pytest.fixture(scope="module")
def queue(depth: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Queue]:
    filled = Queue(tmp_path_factory.mktemp(f"depth{depth}") / "queue.db", depth)
    yield filled
    filled.close()


def _rounds(queue: Queue) -> int:
    return 200 if queue.depth >= 1_000 else 20


def test_enqueue(benchmark: Any, queue: Queue) -> None:
    job_id = benchmark(queue.call(lambda: queue.backend.enqueue(CTX, MESSAGE)))
    assert queue.run(queue.backend.get_status(CTX, job_id)) == "enqueued"


def test_enqueue_many_100(benchmark: Any, queue: Queue) -> None:
    batch = [MESSAGE] * 100
    ids = benchmark(queue.call(lambda: queue.backend.enqueue_many(CTX, batch)))
    assert len(ids) == 100


def test_dequeue_and_ack(benchmark: Any, queue: Queue) -> None:
    backend = queue.backend

    async def lifecycle() -> LeasedJob:
        lease = await backend.dequeue(CTX, QUEUES)
        assert lease is not None
        await backend.ack_complete(CTX, lease)
        return lease

    lease = benchmark.pedantic(queue.call(lifecycle), rounds=_rounds(queue), warmup_rounds=5)
    assert queue.run(backend.get_status(CTX, lease.job_id)) == "completed"


def test_dequeue_many_32_and_ack(benchmark: Any, queue: Queue) -> None:
    """A worker's batch: lease 32 jobs in one transaction, ack each concurrently."""
    backend = queue.backend

    async def batch() -> int:
        leases = await backend.dequeue_many(CTX, QUEUES, 32)
        await asyncio.gather(*(backend.ack_complete(CTX, lease) for lease in leases))
        return len(leases)

    assert benchmark.pedantic(queue.call(batch), rounds=_rounds(queue) // 4) == 32


def test_heartbeat(benchmark: Any, queue: Queue) -> None:
    lease = queue.run(queue.backend.dequeue(CTX, QUEUES))
    assert lease is not None
    extended = benchmark(queue.call(lambda: queue.backend.heartbeat(CTX, lease)))
    assert extended.lease_token == lease.lease_token
    queue.run(queue.backend.ack_complete(CTX, lease))


def test_cancel(benchmark: Any, queue: Queue) -> None:
    backend = queue.backend

    def fresh_job() -> tuple[tuple[str], dict[str, Any]]:
        return (queue.run(backend.enqueue(CTX, MESSAGE)),), {}

    status = benchmark.pedantic(
        lambda job_id: queue.run(backend.cancel_job(CTX, job_id)),
        setup=fresh_job,
        rounds=_rounds(queue),
    )
    assert status == "canceled"


def test_history(benchmark: Any, queue: Queue) -> None:
    backend = queue.backend
    lease = queue.run(backend.dequeue(CTX, QUEUES))
    assert lease is not None
    queue.run(backend.ack_complete(CTX, lease))
    events = benchmark(queue.call(lambda: backend.history(CTX, lease.job_id)))
    assert [event.type for event in events] == ["enqueued", "leased", "completed"]
