"""The projection checkpoint survives SIGKILL: between an append and the checkpoint that
would cover it, and in the middle of a checkpoint's write, a reopened file equals the
fold of its log and loses nothing. Real processes, killed with SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from dogqueue import QueueCtx, rebuild
from dogqueue.audit.verify import verify_log
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.log import SqliteLogReader
from tests.integration.checkpoint_files import read_checkpoint

WORKER = Path(__file__).with_name("checkpoint_crash_worker.py")
JOBS = 400
CTX = QueueCtx("acme")


async def _kill_when(path: Path, mode: str, signal_line: str) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        str(path),
        mode,
        str(JOBS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert child.stdout is not None and child.stderr is not None
    line = await asyncio.wait_for(child.stdout.readline(), 120)
    if line.decode().strip() != signal_line:
        child.kill()
        raise AssertionError((line, await child.stderr.read()))
    child.send_signal(signal.SIGKILL)
    assert await child.wait() == -signal.SIGKILL


async def _reopened_equals_the_fold(path: Path) -> None:
    position, rows, events = read_checkpoint(path)
    # The checkpoint is exact for the position it is stamped with ...
    assert rows == rebuild(e for e in events if e.seq <= position)
    assert position < max(e.seq for e in events)
    folded = rebuild(events)
    assert Counter(e.type for e in events)["enqueued"] == JOBS
    # ... a reader folds the tail onto it ...
    log = SqliteLogReader(path)
    try:
        assert {(j.tenant_id, j.job_id): j for j in await log.jobs()} == folded
        assert (await verify_log(log)).ok
    finally:
        await log.close()
    # ... and a reopened backend decides from all of it, then checkpoints it.
    async with SqliteBackend(path) as backend:
        assert await backend.projected_jobs() == folded
        enqueued = [job for job in folded.values() if job.status.value == "enqueued"]
        leases = await backend.dequeue_many(CTX, ["default"], JOBS)
        assert sorted(lease.job_id for lease in leases) == sorted(j.job_id for j in enqueued)
        events_now = await backend.read_events()
        assert await backend.projected_jobs() == rebuild(events_now)
    position, rows, events = read_checkpoint(path)
    assert position == max(e.seq for e in events)
    assert rows == rebuild(events)


@pytest.mark.parametrize(
    ("mode", "signal_line"),
    [
        ("after-append", "appended"),
        ("mid-checkpoint", "checkpointing"),
        ("mid-memory-checkpoint", "checkpointing"),
    ],
)
async def test_a_kill_leaves_a_file_that_reopens_as_the_fold(
    tmp_path: Path, mode: str, signal_line: str
) -> None:
    path = tmp_path / "crash.db"
    await _kill_when(path, mode, signal_line)
    await _reopened_equals_the_fold(path)
