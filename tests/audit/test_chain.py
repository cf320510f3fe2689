"""The hash chain: the pure function, every backend writing a chain that verifies, and
memory and SQLite writing the same chain from the same events."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from dogqueue import FakeClock
from dogqueue.audit.verify import all_records, verify_records
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.log.chain import GENESIS, chain_hash
from dogqueue.log.reader import LogRecord
from tests.audit.audit_workload import write_story


def test_chain_hash_is_sha256_of_previous_position_and_bytes() -> None:
    expected = hashlib.sha256(GENESIS + (7).to_bytes(8, "big") + b"event").digest()
    assert chain_hash(GENESIS, 7, b"event") == expected


def test_chain_hash_depends_on_every_input() -> None:
    base = chain_hash(GENESIS, 1, b"event")
    assert chain_hash(b"\x01" * 32, 1, b"event") != base
    assert chain_hash(GENESIS, 2, b"event") != base
    assert chain_hash(GENESIS, 1, b"evenT") != base


async def records_of(backend: EngineBackend) -> list[LogRecord]:
    log = backend.log_reader()
    try:
        return [record async for record in all_records(log, page=7)]
    finally:
        await log.close()


async def test_every_backend_writes_a_chain_that_verifies(
    backend: EngineBackend, clock: FakeClock, tmp_path: Path
) -> None:
    await write_story(backend, clock)
    await backend.close()
    records = await records_of(backend)
    report = verify_records(records)
    assert report.ok, report.problems
    assert report.events == len(records) == 18
    log = backend.log_reader()
    assert report.jobs == {(j.tenant_id, j.job_id): j for j in await log.jobs()}
    await log.close()


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
        backend.engine.new_id = _counter()
        async with backend:
            await write_story(backend, clock)
        chains.append([(r.pos, r.tenant_id, r.hash, r.tpos) for r in await records_of(backend)])
    assert len(chains[0]) == 18
    assert chains[0] == chains[1]


def _counter() -> Callable[[], str]:
    numbers = iter(range(1, 1000))
    return lambda: f"job-{next(numbers)}"
