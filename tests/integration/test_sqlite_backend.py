"""Behaviour only the SQLite backend has: persistence, migrations, pragmas, errors."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from dogqueue import (
    FakeClock,
    InvalidInput,
    JobMessage,
    JobStatus,
    QueueCtx,
    StorageError,
    rebuild,
)
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.queries import SCHEMA_VERSION

CTX = QueueCtx("acme")


def msg(**options: object) -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}", **options)  # type: ignore[arg-type]


async def test_state_survives_close_and_reopen(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "q.db"
    async with SqliteBackend(path, clock=clock) as backend:
        done = await backend.enqueue(CTX, msg())
        waiting = await backend.enqueue(CTX, msg(idempotency_key="k"))
        lease = await backend.dequeue(CTX, ["default"])
        assert lease is not None and lease.job_id == done
        await backend.ack_complete(CTX, lease, b"r")
        held = await backend.dequeue(CTX, ["default"])
        assert held is not None
        before = await backend.projected_jobs()
    async with SqliteBackend(path, clock=clock) as reopened:
        assert await reopened.projected_jobs() == before
        assert await reopened.get_status(CTX, done) is JobStatus.COMPLETED
        await reopened.ack_complete(CTX, held)  # the lease is still valid after reopening
        assert (await reopened.get_job(CTX, waiting)).status is JobStatus.COMPLETED
        assert (await reopened.get_job(CTX, done)).result == b"r"


async def test_constructor_does_no_io(tmp_path: Path) -> None:
    path = tmp_path / "not-yet.db"
    backend = SqliteBackend(path)
    assert not path.exists()
    await backend.enqueue(CTX, msg())  # opens on first use
    assert path.exists()
    await backend.close()
    await backend.close()  # idempotent


async def test_wal_mode_and_synchronous_setting(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db", synchronous="FULL") as backend:
        mode = await backend.writer.call(lambda c: c.execute("PRAGMA journal_mode").fetchone())
        sync = await backend.writer.call(lambda c: c.execute("PRAGMA synchronous").fetchone())
        assert mode[0] == "wal"
        assert sync[0] == 2  # FULL
        # The projection checkpoint is derived from the log: its commits need no fsync.
        checkpointer = backend.writer.projection_checkpointer
        assert checkpointer is not None
        ckpt_sync = await asyncio.wrap_future(
            checkpointer._executor.submit(
                lambda: checkpointer._connection().execute("PRAGMA synchronous").fetchone()
            )
        )
        assert ckpt_sync[0] == 1  # NORMAL
    async with SqliteBackend(tmp_path / "q.db") as backend:
        sync = await backend.writer.call(lambda c: c.execute("PRAGMA synchronous").fetchone())
        assert sync[0] == 1  # NORMAL
    with pytest.raises(InvalidInput) as raised:
        SqliteBackend(tmp_path / "q.db", synchronous="OFF")  # type: ignore[arg-type]
    assert raised.value.field == "synchronous"


async def test_schema_version_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with SqliteBackend(path) as backend:
        await backend.enqueue(CTX, msg())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with SqliteBackend(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(StorageError, match="newer"):
        await SqliteBackend(path).open()


async def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError):
        await SqliteBackend(path).open()


async def test_concurrent_calls_share_transactions(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        commits_before = backend.writer.commits
        ids = await asyncio.gather(*(backend.enqueue(CTX, msg()) for _ in range(200)))
        assert len(set(ids)) == 200
        commits = backend.writer.commits - commits_before
        assert commits < 200 / 4, f"{commits} commits for 200 concurrent enqueues"


async def test_one_refused_command_does_not_fail_its_batch(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        await backend.enqueue(CTX, msg(idempotency_key="taken"))
        results = await asyncio.gather(
            backend.enqueue(CTX, msg()),
            backend.enqueue(CTX, msg(idempotency_key="taken")),
            backend.enqueue(CTX, msg()),
            return_exceptions=True,
        )
        assert isinstance(results[0], str) and isinstance(results[2], str)
        assert type(results[1]).__name__ == "JobAlreadyExists"
        assert len(await backend.projected_jobs()) == 3
        assert await backend.projected_jobs() == rebuild(await backend.read_events())


async def test_an_unexpected_error_fails_only_its_own_call(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:

        def broken(tx: object, now: object) -> None:
            tx.append("not an event")  # type: ignore[attr-defined]

        results = await asyncio.gather(
            backend.enqueue(CTX, msg()),
            backend.writer.run(broken),
            backend.enqueue(CTX, msg()),
            return_exceptions=True,
        )
        assert isinstance(results[0], str) and isinstance(results[2], str)
        assert isinstance(results[1], AttributeError)
        assert len(await backend.read_events()) == 2


UNCLOSED = """
import asyncio, sys
from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
KEEP = []

async def main() -> None:
    backend = SqliteBackend(sys.argv[1])
    KEEP.append(backend)
    await backend.enqueue(QueueCtx("t"), JobMessage(job_type="x", payload_bytes=b""))
    raise SystemExit(3)

asyncio.run(main())
"""


async def test_a_backend_left_open_does_not_hang_interpreter_exit(tmp_path: Path) -> None:
    import sys

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", UNCLOSED, str(tmp_path / "q.db"), stderr=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.wait_for(process.wait(), timeout=30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("the interpreter hung at exit") from None
    assert process.returncode == 3
