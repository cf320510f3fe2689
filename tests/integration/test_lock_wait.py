"""How long a write waits for another connection's write lock is configurable; past the
wait the call raises StorageError, writes nothing, and can be retried."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from dogqueue import InvalidInput, JobMessage, QueueCtx, StorageError
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.backend import DEFAULT_LOCK_WAIT

CTX = QueueCtx("acme")
MESSAGE = JobMessage(job_type="x", payload_bytes=b"{}")


@contextmanager
def write_lock_held(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the database's write lock until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_the_default_wait_is_a_minute() -> None:
    assert timedelta(seconds=60) == DEFAULT_LOCK_WAIT
    assert SqliteBackend("unused.db").lock_wait == DEFAULT_LOCK_WAIT


@pytest.mark.parametrize("bad", [timedelta(0), timedelta(seconds=-1), 5])
def test_the_wait_must_be_a_positive_timedelta(bad: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        SqliteBackend("unused.db", lock_wait=bad)  # type: ignore[arg-type]
    assert raised.value.field == "lock_wait"


async def test_past_the_wait_a_call_fails_writes_nothing_and_can_be_retried(
    tmp_path: Path,
) -> None:
    path = tmp_path / "queue.db"
    async with SqliteBackend(path, lock_wait=timedelta(milliseconds=200)) as backend:
        await backend.enqueue(CTX, MESSAGE)
        with write_lock_held(path):
            results = await asyncio.gather(
                *(backend.enqueue(CTX, MESSAGE) for _ in range(5)), return_exceptions=True
            )
        assert all(isinstance(r, StorageError) for r in results), results
        assert "database stayed locked for 0.2s" in str(results[0])
        assert len(await backend.read_events()) == 1
        await backend.enqueue(CTX, MESSAGE)
        assert len(await backend.read_events()) == 2


async def test_opening_waits_too(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    async with SqliteBackend(path):
        pass
    with write_lock_held(path), pytest.raises(StorageError, match="stayed locked"):
        await SqliteBackend(path, lock_wait=timedelta(milliseconds=100)).open()


async def test_without_a_limit_a_call_waits_until_the_lock_is_free(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    async with SqliteBackend(path, lock_wait=None) as backend:
        await backend.enqueue(CTX, MESSAGE)
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        waiting = asyncio.ensure_future(backend.enqueue(CTX, MESSAGE))
        # Let the call meet the lock (it keeps retrying), then free it from another thread.
        release = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
        release.start()
        try:
            await waiting
        finally:
            release.join()
            holder.close()
        assert len(await backend.read_events()) == 2
