"""Abrupt loss of a SQLite writer: a real child process killed with SIGKILL, either
inside an open write transaction or while committing as fast as it can. Nothing
half-written may appear, nothing committed may be lost, and the projection must still
be the fold of the log."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.core.message import QueueCtx
from dogqueue.core.projection import rebuild
from dogqueue.core.status import JobStatus
from properties.crash_child import CHECKPOINTED_BATCH

ROOT = Path(__file__).resolve().parent.parent
ACME = QueueCtx("acme")


def child(path: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "properties.crash_child", str(path), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def killed_after(path: Path, mode: str, lines: int) -> list[str]:
    """The first `lines` job ids a child in `mode` printed (each once committed), read
    before the child is killed with SIGKILL."""
    with child(path, mode) as process:
        assert process.stdout is not None
        try:
            return [process.stdout.readline().strip() for _ in range(lines)]
        finally:
            process.kill()
            process.wait(timeout=60)


async def check_consistent(path: Path) -> SqliteBackend:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    backend = SqliteBackend(path)
    await backend.open()
    assert rebuild(await backend.read_events()) == await backend.projected_jobs()
    return backend


async def test_a_writer_killed_mid_transaction_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "queue.db"
    with child(path, "mid-transaction") as process:
        try:
            out, _ = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    committed = out.split()
    assert len(committed) == 5
    backend = await check_consistent(path)
    try:
        events = await backend.read_events()
        assert [event.type for event in events] == ["enqueued"] * 5 + ["leased"]
        jobs = await backend.projected_jobs()
        assert sorted(job_id for _, job_id in jobs) == sorted(committed)
        statuses = sorted(job.status for job in jobs.values())
        assert statuses == [JobStatus.ENQUEUED] * 4 + [JobStatus.LEASED]
        # The file is usable: the writer lock died with the process.
        assert await backend.cancel_job(ACME, committed[0]) is JobStatus.CANCELED
    finally:
        await backend.close()


async def test_a_writer_killed_while_busy_loses_nothing_it_returned(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    returned = killed_after(path, "busy", 200)
    backend = await check_consistent(path)
    try:
        jobs = await backend.projected_jobs()
        for job_id in returned:  # every enqueue that returned is in the log
            assert ("acme", job_id) in jobs
        for job_id in returned[:-1]:  # and so is the ack that followed it
            assert jobs[("acme", job_id)].status is JobStatus.COMPLETED
    finally:
        await backend.close()


async def test_a_writer_killed_while_checkpointing_loses_nothing_it_returned(
    tmp_path: Path,
) -> None:
    """Killed while its WAL checkpointer copies pages into the database file (a
    checkpoint is due after every commit): reopening finds every returned job, and the
    projection is still the fold of the log."""
    path = tmp_path / "queue.db"
    returned = killed_after(path, "checkpointing", CHECKPOINTED_BATCH * 6)
    backend = await check_consistent(path)
    try:
        jobs = await backend.projected_jobs()
        assert all(("acme", job_id) in jobs for job_id in returned)
    finally:
        await backend.close()
