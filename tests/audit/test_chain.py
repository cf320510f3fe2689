"""The hash chain: the pure function, and both backends writing the same chain."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from dogqueue import FakeClock
from dogqueue.audit.logfile import LogFile, LogRecord
from dogqueue.audit.verify import verify_records
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.log.chain import GENESIS, chain_hash
from tests.audit.audit_workload import write_story


def test_chain_hash_is_sha256_of_previous_position_and_bytes() -> None:
    expected = hashlib.sha256(GENESIS + (7).to_bytes(8, "big") + b"event").digest()
    assert chain_hash(GENESIS, 7, b"event") == expected


def test_chain_hash_depends_on_every_input() -> None:
    base = chain_hash(GENESIS, 1, b"event")
    assert chain_hash(b"\x01" * 32, 1, b"event") != base
    assert chain_hash(GENESIS, 2, b"event") != base
    assert chain_hash(GENESIS, 1, b"evenT") != base


def records_of(backend: EngineBackend, path: Path) -> list[LogRecord]:
    if isinstance(backend, MemoryBackend):
        return [LogRecord(*stored) for stored in backend._store.log]
    with LogFile(path) as log:
        return list(log.records())


async def test_every_backend_writes_a_chain_that_verifies(
    backend: EngineBackend, clock: FakeClock, tmp_path: Path
) -> None:
    await write_story(backend, clock)
    await backend.close()
    records = records_of(backend, tmp_path / "queue.db")
    report = verify_records(records)
    assert report.ok, report.problems
    assert report.events == len(records) == 18
    assert report.jobs == await _projection(backend, tmp_path / "queue.db")


async def test_memory_and_sqlite_write_identical_chains(tmp_path: Path) -> None:
    """Same events at the same positions give the same hashes, whatever the backend."""
    chains = []
    for kind in ("memory", "sqlite"):
        clock = FakeClock()
        backend: EngineBackend = (
            MemoryBackend(clock=clock, draw=lambda: 0.5)
            if kind == "memory"
            else SqliteBackend(tmp_path / "q.db", clock=clock, draw=lambda: 0.5)
        )
        backend._engine.new_id = _counter()
        async with backend:
            await write_story(backend, clock)
        chains.append(
            [(r.seq, r.tenant_id, r.hash) for r in records_of(backend, tmp_path / "q.db")]
        )
    assert len(chains[0]) == 18
    assert chains[0] == chains[1]


def _counter() -> Callable[[], str]:
    numbers = iter(range(1, 1000))
    return lambda: f"job-{next(numbers)}"


async def _projection(backend: EngineBackend, path: Path) -> dict[tuple[str, str], object]:
    if isinstance(backend, MemoryBackend):
        return dict(backend._store.jobs)
    with LogFile(path) as log:
        return {(j.tenant_id, j.job_id): j for j in log.jobs()}
