"""`dogqueue demo` and `dogqueue worker` in a subprocess, signals included."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from dogqueue import JobStatus, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.cli.demo_pipeline import run_demo
from tests.runtime.helpers import until_status, within

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
T = QueueCtx("tenant-1")
sys.path.insert(0, str(EXAMPLES))
from worker_process import Greet, Nap, make_adapter  # noqa: E402


def dogqueue(*args: str) -> list[str]:
    return [sys.executable, "-m", "dogqueue", *args]


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLES), env.get("PYTHONPATH")]))
    return env


def test_demo_command_shows_the_whole_pipeline() -> None:
    done = subprocess.run(dogqueue("demo"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "duplicate snapshot refused" in out
    assert "failed(mail API timed out) -> leased -> completed" in out
    assert "cleanup: task cancelled mid-run" in out
    assert "enqueued -> leased -> canceled" in out
    assert "daily digest sent (it was scheduled)" in out
    for job_type in ("snapshot", "analysis", "summaries", "cleanup"):
        assert job_type in out


async def test_demo_ends_with_every_job_in_its_expected_state(tmp_path: Path) -> None:
    statuses = await run_demo(tmp_path, write=lambda line: None)
    expected = {
        f"{tenant}/{label}": JobStatus.COMPLETED
        for tenant in ("acme", "globex")
        for label in ("snapshot", "analysis", "summaries")
    }
    expected["globex/cleanup"] = JobStatus.CANCELED
    assert statuses == expected


async def test_worker_command_runs_jobs_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        adapter, _ = await make_adapter(backend)
        ids = [await adapter.enqueue(T, Greet(name=f"n{i}")) for i in range(5)]
        process = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child)
            dogqueue(
                "worker", "worker_process:make_adapter", "--db", str(db), "--tenant", "tenant-1"
            ),
            env=worker_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for job_id in ids:
                await until_status(backend, T, job_id, JobStatus.COMPLETED)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert stderr.count("completed") == 5
        assert await adapter.get_result(T, ids[0], str) == "hello, n0"


async def test_second_sigterm_stops_at_once_and_releases_the_running_job(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        adapter, _ = await make_adapter(backend)
        job_id = await adapter.enqueue(T, Nap(seconds=3600))
        process = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child)
            dogqueue("worker", "worker_process:make_adapter", "--db", str(db), "--grace", "3600"),
            env=worker_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            await until_status(backend, T, job_id, JobStatus.LEASED)
            process.send_signal(signal.SIGTERM)  # graceful: the nap may take its hour
            await asyncio.sleep(0.2)
            assert process.poll() is None
            process.send_signal(signal.SIGTERM)  # the second one stops at once
            await within(asyncio.to_thread(process.wait))
        finally:
            process.kill()
            _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert [e.type for e in await backend.history(T, job_id)] == [
            "enqueued",
            "leased",
            "released",
        ]


def test_worker_command_refuses_a_bad_target(tmp_path: Path) -> None:
    done = subprocess.run(
        dogqueue("worker", "no_such_module:app", "--db", str(tmp_path / "q.db")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no_such_module" in done.stderr
