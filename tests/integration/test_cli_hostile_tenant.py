"""A --tenant that is not valid UTF-8 on the command line is refused naming the option,
with exit code 2 and no traceback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend

#: Bytes that are not UTF-8; Python hands them to the program as a lone surrogate.
UNDECODABLE = b"acme\xff"


async def _make_log(path: Path) -> str:
    async with SqliteBackend(path) as backend:
        return await backend.enqueue(QueueCtx("acme"), JobMessage(job_type="x", payload_bytes=b""))


@pytest.mark.parametrize("command", ["history", "jobs", "stats", "explain"])
def test_an_undecodable_tenant_is_refused(tmp_path: Path, command: str) -> None:
    path = tmp_path / "queue.db"
    job_id = asyncio.run(_make_log(path))
    args: list[str | bytes] = [sys.executable, "-m", "dogqueue", command, "--db", str(path)]
    args += ["--tenant", UNDECODABLE]
    if command in ("history", "explain"):
        args.append(job_id)
    result = subprocess.run(args, capture_output=True, timeout=120, check=False)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert f"dogqueue {command}: tenant: must be valid Unicode" in stderr
