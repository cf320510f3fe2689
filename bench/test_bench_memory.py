"""Resident memory of a process running jobs must not grow with the finished jobs
kept in the log: nothing in the backend holds a job once its transaction commits."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import pytest

from bench.workload import CTX, MESSAGE
from dogqueue.backend.sqlite import SqliteBackend

from .conftest import is_quick

MIB = 1024 * 1024
#: Growth allowed between the first measured round and the last: SQLite's page cache
#: (2 MiB by default) and allocator slack, far below what holding the jobs would take.
ALLOWED_GROWTH_MIB = 8.0


def resident_bytes() -> int:
    """This process's resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def run_rounds(path: Path, rounds: int, jobs_per_round: int) -> list[float]:
    samples = []
    async with SqliteBackend(path) as backend:
        for _ in range(rounds):
            await backend.enqueue_many(CTX, [MESSAGE] * jobs_per_round)
            while leases := await backend.dequeue_many(CTX, ["default"], 100):
                await asyncio.gather(*(backend.ack_complete(CTX, lease) for lease in leases))
            gc.collect()
            samples.append(resident_bytes() / MIB)
    return samples


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux /proc")
def test_memory_is_flat_as_finished_jobs_accumulate(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rounds, per_round = (4, 500) if is_quick(request.config) else (10, 10_000)
    samples = asyncio.run(run_rounds(tmp_path / "queue.db", rounds, per_round))
    print(f"RSS MiB after each round of {per_round:,} finished jobs: {samples}")
    # The first round warms caches and imports; later rounds must not keep growing.
    assert samples[-1] - samples[1] < ALLOWED_GROWTH_MIB
