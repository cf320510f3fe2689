"""A stored row that does not decode surfaces from the Backend API as a StorageError
naming the row, never as a decoder error; the other rows stay usable."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dogqueue import JobMessage, QueueCtx, StorageError
from dogqueue.backend.sqlite import SqliteBackend
from tests.audit.cli_run import dogqueue

CTX = QueueCtx("acme")
MESSAGE = JobMessage(job_type="x", payload_bytes=b"{}")
#: Not msgpack at all, a msgpack value of the wrong shape, and a value that is not bytes.
GARBAGE: list[object] = [b"\xc1\xc1\xc1", b"\x93\x01\x02\x03", "not bytes"]


def _corrupt(path: Path, statement: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    conn.execute(statement, params)
    conn.commit()
    conn.close()


async def _log(path: Path) -> tuple[str, str]:
    async with SqliteBackend(path) as backend:
        broken = await backend.enqueue(CTX, MESSAGE)
        intact = await backend.enqueue(CTX, MESSAGE)
    return broken, intact


@pytest.mark.parametrize("garbage", GARBAGE, ids=["not-msgpack", "wrong-shape", "text"])
async def test_an_undecodable_projection_row(tmp_path: Path, garbage: object) -> None:
    """The projection tables are a checkpoint: a row that does not decode is reported
    where the checkpoint is read, while the queue, which decides from the log, goes on."""
    path = tmp_path / "queue.db"
    broken, intact = await _log(path)
    _corrupt(path, "UPDATE jobs SET state = ? WHERE job_id = ?", garbage, broken)
    async with SqliteBackend(path) as backend:
        with pytest.raises(StorageError, match="corrupt database: the projection row"):
            await backend.projected_jobs()
        assert (await backend.get_job(CTX, broken)).job_id == broken
        assert (await backend.get_job(CTX, intact)).job_id == intact
        leased = await backend.dequeue_many(CTX, ["default"], 2)
        assert sorted(job.job_id for job in leased) == sorted([broken, intact])
        assert len(await backend.read_events()) == 4
        # Replaying the log repairs the checkpoint.
        assert await backend.rebuild_projections() == 4
        jobs = await backend.projected_jobs()
        assert {job.job_id for job in jobs.values()} == {broken, intact}


@pytest.mark.parametrize("garbage", GARBAGE, ids=["not-msgpack", "wrong-shape", "text"])
async def test_an_undecodable_event(tmp_path: Path, garbage: object) -> None:
    path = tmp_path / "queue.db"
    broken, intact = await _log(path)
    _corrupt(path, "UPDATE events SET data = ? WHERE seq = 1", garbage)
    calls: list[Callable[[SqliteBackend], Awaitable[Any]]] = [
        lambda b: b.history(CTX, broken),
        lambda b: b.read_events(),
        lambda b: b.rebuild_projections(),
    ]
    async with SqliteBackend(path) as backend:
        for call in calls:
            with pytest.raises(StorageError, match="the event at seq 1 does not decode"):
                await call(backend)
        assert [event.seq for event in await backend.read_events(after_seq=1)] == [2]
        assert len(await backend.history(CTX, intact)) == 1


#: The commands that read the projection or the log, with their extra arguments.
COMMANDS = [
    ("verify", []),
    ("replay", []),
    ("jobs", []),
    ("jobs", ["--tenant", "acme"]),
    ("stats", []),
    ("stats", ["--tenant", "acme"]),
    ("jobs", ["--as-of", "100"]),
    ("stats", ["--tenant", "acme", "--as-of", "100"]),
]
COMMAND_IDS = [" ".join([name, *extra]) for name, extra in COMMANDS]


def _run(path: Path, name: str, extra: list[str]) -> tuple[int, str]:
    done = dogqueue(name, "--db", path, *extra)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(("name", "extra"), COMMANDS, ids=COMMAND_IDS)
async def test_the_command_line_reports_a_corrupt_projection_row(
    tmp_path: Path, name: str, extra: list[str]
) -> None:
    path = tmp_path / "queue.db"
    broken, _ = await _log(path)
    _corrupt(path, "UPDATE jobs SET state = ? WHERE job_id = ?", b"\xc1\xc1", broken)
    code, text = await asyncio.to_thread(_run, path, name, extra)
    if "--as-of" in extra:  # folded from the log, which is sound
        assert code == 0, text
        return
    assert code == 1, text
    assert "Traceback" not in text
    assert broken in text and "does not decode" in text


@pytest.mark.parametrize(("name", "extra"), COMMANDS, ids=COMMAND_IDS)
async def test_the_command_line_reports_an_undecodable_event(
    tmp_path: Path, name: str, extra: list[str]
) -> None:
    path = tmp_path / "queue.db"
    await _log(path)
    _corrupt(path, "UPDATE events SET data = ? WHERE seq = 1", b"\xc1\xc1")
    code, text = await asyncio.to_thread(_run, path, name, extra)
    if name in ("jobs", "stats") and "--as-of" not in extra:  # the projection is sound
        assert code == 0, text
        return
    assert code == 1, text
    assert "Traceback" not in text
    assert "event 1" in text or "seq 1" in text, text


async def test_verify_names_an_undecodable_event_once(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    await _log(path)
    _corrupt(path, "UPDATE events SET data = ? WHERE seq = 1", b"\xc1\xc1")
    code, text = await asyncio.to_thread(_run, path, "verify", [])
    assert code == 1
    assert "event 1 cannot be decoded" in text
    assert "absent from the log" not in text  # its job's row is not blamed as well
