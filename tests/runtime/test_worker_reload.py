"""`dogqueue worker --reload` (a real process): editing the job's module restarts the
worker, which then runs the new code; SIGTERM stops it with exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from dogqueue import JobStatus, QueueAdapter, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from tests.runtime.helpers import until_status

ROOT = Path(__file__).resolve().parents[2]
T = QueueCtx("t")

APP = """
from dogqueue import QueueAdapter, job


@job(takes_context=False)
async def version() -> str:
    return "{answer}"


def make(backend):
    return QueueAdapter(backend, jobs=[version])
"""


def write_app(folder: Path, answer: str) -> None:
    (folder / "reload_app.py").write_text(textwrap.dedent(APP.format(answer=answer)))


async def test_editing_the_module_restarts_the_worker_on_the_new_code(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    sys.path.insert(0, str(tmp_path))
    try:
        from reload_app import version  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    db = tmp_path / "queue.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    async with SqliteBackend(db) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend, jobs=[version])
        first = await adapter.enqueue(T, version())
        command = [sys.executable, "-m", "dogqueue", "worker", "reload_app:make"]
        options = ["--db", str(db), "--queue", "*", "--grace", "1", "--reload"]
        worker = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child)
            [*command, *options],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            await until_status(backend, T, first, JobStatus.COMPLETED)
            assert await adapter.get_result(T, first, str) == "v1"
            write_app(tmp_path, "v2")
            second = await adapter.enqueue(T, version())
            await until_status(backend, T, second, JobStatus.COMPLETED)
            # The old worker may take it before the change is seen; a third one shows
            # the new code whatever happened to the second.
            results = {await adapter.get_result(T, second, str)}
            for _ in range(100):  # each round waits for a job: bounded by PATIENCE_SECONDS
                if "v2" in results:
                    break
                third = await adapter.enqueue(T, version())
                await until_status(backend, T, third, JobStatus.COMPLETED)
                results.add(await adapter.get_result(T, third, str))
            assert "v2" in results
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert "restarting the worker" in stderr and "for development only" in stderr
