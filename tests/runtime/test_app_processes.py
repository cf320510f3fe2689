"""`dogqueue worker` processes on one SQLite file: cancel from another process with the
default lease, a rolling deploy, the import path, logs and the health probe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dogqueue import JobStatus, QueueCtx
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.sqlite import SqliteBackend
from tests.runtime.app_jobs import Boom, Report, Sleepy, Snooze, make_new, make_old
from tests.runtime.helpers import event_types, until, until_status

ROOT = Path(__file__).resolve().parents[2]
T = QueueCtx("shop")


def env_with_root() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextmanager
def worker_process(target: str, db: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """A `dogqueue worker` child, stopped with SIGTERM at the end (exit code 0)."""
    command = [sys.executable, "-m", "dogqueue", "worker", target, "--db", str(db), *options]
    process = subprocess.Popen(command, env=env_with_root(), stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0


def exists(path: Path) -> bool:
    """Whether the job in the worker process left this file."""
    return path.exists()


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM the worker; return its log."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    return stderr


async def test_a_cancel_from_another_process_stops_the_job_with_the_default_lease(
    tmp_path: Path,
) -> None:
    db, marker = tmp_path / "queue.db", tmp_path / "cancelled"
    async with SqliteBackend(db) as backend:
        adapter = await make_old(backend)
        handle = await adapter.enqueue(T, Sleepy(marker=str(marker), seconds=3600))
        # Default lease (5 min): the next heartbeat is 100 s away, so only the worker's
        # check of its own running jobs can stop the job within the test's patience.
        with worker_process("tests.runtime.app_jobs:make_old", db):

            async def started() -> bool:
                return exists(tmp_path / "cancelled.started")

            await until(started)
            await adapter.cancel_job(T, handle)

            async def cancelled() -> bool:
                return exists(marker)

            await until(cancelled)
        assert await event_types(backend, T, handle) == ["enqueued", "leased", "canceled"]


async def test_a_rolling_deploy_completes_a_new_job_type_once(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        new_adapter = await make_new(backend)
        handle = await new_adapter.enqueue(T, Report(name="q3"))
        hold = ("--deploy-hold", "0.05")
        with worker_process("tests.runtime.app_jobs:make_old", db, *hold) as old:

            async def given_back() -> bool:
                return "released" in await event_types(backend, T, handle)

            await until(given_back)  # the old build has no `report`: it gives it back
            assert await backend.get_status(T, handle) is not JobStatus.FAILED
            with worker_process("tests.runtime.app_jobs:make_new", db, *hold):
                result = await new_adapter.wait_result(T, handle, timeout=30)
            old_log = stop(old)
        assert result.startswith("report q3")
        types = await event_types(backend, T, handle)
        assert types.count("completed") == 1 and "failed" not in types
        assert (await backend.get_job(T, handle)).attempts == 1  # give-backs do not count
        assert "cannot run here: job type 'report' is not registered" in old_log


async def test_json_logs_name_what_is_served_and_the_error_of_a_failure(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        adapter = await make_old(backend)
        handle = await adapter.enqueue(T, Boom(), max_retries=0)
        command = ["--log-format", "json", "--tenant", "shop", "--queue", "default"]
        with worker_process("tests.runtime.app_jobs:make_old", db, *command) as process:
            await until_status(backend, T, handle, JobStatus.FAILED)
            log = stop(process)
    records = [json.loads(line) for line in log.splitlines()]
    messages = [record["message"] for record in records]
    (start,) = [m for m in messages if m.startswith("worker started")]
    assert f"db={db}" in start and "queues=default" in start and "tenants=shop" in start
    assert "job_types=boom,sleepy,snooze" in start
    failure = [m for m in messages if "card declined" in m]
    assert failure and "ValueError: card declined: insufficient funds" in failure[0]
    assert "second line" not in failure[0]


def test_the_worker_imports_from_the_current_directory_and_check_probes(tmp_path: Path) -> None:
    (tmp_path / "myapp_jobs.py").write_text(
        textwrap.dedent(
            """
            from dogqueue import Job, QueueAdapter

            class Ping(Job[None, str]):
                JOB_TYPE = "ping"

                async def execute(self, ctx: None) -> str:
                    return "pong"

            async def make(backend):
                adapter = QueueAdapter(backend)
                await adapter.register_job(Ping)
                return adapter
            """
        )
    )
    # -I: no PYTHONPATH and no current directory from Python itself; only the worker's.
    command = [sys.executable, "-I", "-m", "dogqueue", "worker", "myapp_jobs:make"]
    ok = subprocess.run(
        [*command, "--db", "queue.db", "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: db=queue.db") and "job_types=ping" in ok.stdout
    broken = subprocess.run(
        [*command, "--db", str(tmp_path / "missing" / "queue.db"), "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode != 0 and "dogqueue worker" in broken.stderr


async def test_workers_n_restarts_a_killed_child_and_stops_all_on_sigterm(tmp_path: Path) -> None:
    db, log_path = tmp_path / "queue.db", tmp_path / "supervisor.log"
    async with SqliteBackend(db) as backend:
        adapter = await make_new(backend)
        command = [sys.executable, "-m", "dogqueue", "worker", "tests.runtime.app_jobs:make_new"]
        with log_path.open("w") as log_file:
            supervisor = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child)
                [*command, "--db", str(db), "--workers", "2"],
                env=env_with_root(),
                stderr=log_file,
            )
        try:

            def log_lines(text: str) -> list[str]:
                return [line for line in log_path.read_text().splitlines() if text in line]

            async def started(count: int) -> bool:
                return len(log_lines("worker started: db=")) >= count

            await until(lambda: started(2))
            pid = int(log_lines("worker 0 started: pid")[0].rsplit(" ", 1)[1])
            os.kill(pid, signal.SIGKILL)
            await until(lambda: started(3))  # the supervisor started it again
            assert log_lines(f"(pid {pid}) exited with code -9; starting it again")
            handles = [await adapter.enqueue(T, Report(name=f"r{i}")) for i in range(6)]
            for handle in handles:
                assert (await adapter.wait_result(T, handle, timeout=30)).startswith("report")
        finally:
            supervisor.send_signal(signal.SIGTERM)
            code = supervisor.wait(timeout=60)
        assert code == 0, log_path.read_text()
        assert len(log_lines("worker stopped")) == 2  # both live children stopped gracefully


async def test_a_blocking_job_longer_than_its_lease_completes_once(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        adapter = await make_old(backend)
        handle = await adapter.enqueue(T, Snooze(seconds=3))
        # A 1 s lease: the job blocks its thread three times as long, heartbeats go on.
        options = ("--lease-seconds", "1", "--reaper-seconds", "0.2")
        with worker_process("tests.runtime.app_jobs:make_old", db, *options):
            result = await adapter.wait_result(T, handle, timeout=60)
        assert result == "woke after attempt 1"
        types = await event_types(backend, T, handle)
        assert types.count("leased") == 1 and "expired" not in types
        assert types.count("heartbeat") >= 3


def test_sigterm_at_any_moment_of_startup_stops_the_worker_cleanly(tmp_path: Path) -> None:
    """SIGTERM while the worker starts or has just logged that it started ends the
    process at once: exit code 0 (or killed by the signal, before Python has installed
    any handler); it once hung in the last window."""
    target = "tests.runtime.app_jobs:make_old"
    for attempt in range(6):
        db = tmp_path / f"queue{attempt}.db"
        command = [sys.executable, "-m", "dogqueue", "worker", target, "--db", str(db)]
        process = subprocess.Popen(command, env=env_with_root(), stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        if attempt < 2:  # during start-up (imports, opening the database)
            time.sleep(0.2 * attempt)  # real processes: a wall-clock moment, no fake clock
        else:  # the moment the start line is written
            for line in process.stderr:
                if "worker started" in line:
                    break
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        allowed = {0, -signal.SIGTERM} if attempt < 2 else {0}
        assert process.returncode in allowed, f"attempt {attempt}: {process.returncode}"


async def test_log_no_error_text_keeps_the_error_out_of_every_line(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        adapter = await make_old(backend)
        handle = await adapter.enqueue(T, Boom(), max_retries=0)
        command = ["--log-format", "json", "--log-no-error-text"]
        with worker_process("tests.runtime.app_jobs:make_old", db, *command) as process:
            await until_status(backend, T, handle, JobStatus.FAILED)
            log = stop(process)
    records = [json.loads(line) for line in log.splitlines()]
    (failed,) = [r for r in records if r.get("job_id") == handle and "outcome" in r]
    assert failed["outcome"] == "failed" and failed["error_type"] == "ValueError"
    assert "card declined" not in log and "error" not in failed


def test_the_start_line_names_a_postgres_database_without_credentials(pg_schema: str) -> None:
    parts = urlsplit(default_dsn())
    with_password = parts._replace(
        netloc=f"{parts.username or 'postgres'}:pw-c0ffee@{parts.hostname}:{parts.port or 5432}",
        query=f"schema={pg_schema}",
    )
    command = [sys.executable, "-m", "dogqueue", "worker", "tests.runtime.app_jobs:make_old"]
    done = subprocess.run(
        [*command, "--db", urlunsplit(with_password), "--check"],
        env=env_with_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    place = f"{parts.hostname}:{parts.port or 5432}{parts.path}?schema={pg_schema}"
    assert done.stdout.startswith(f"ok: db=postgresql://{place} ")
    assert "pw-c0ffee" not in done.stdout + done.stderr
    assert (parts.username or "postgres") + "@" not in done.stdout


def workers_listed(db: Path, *options: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dogqueue", "workers", "--db", str(db), *options],
        env=env_with_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_dogqueue_workers_lists_a_live_worker_and_then_its_stop(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        await make_old(backend)
    options = ("--tenant", "shop", "--queue", "default", "--queue", "mail", "--concurrency", "4")
    with worker_process("tests.runtime.app_jobs:make_old", db, *options) as process:

        async def announced() -> bool:
            return str(process.pid) in workers_listed(db, "--json")

        await until(announced)
        (live,) = [json.loads(line) for line in workers_listed(db, "--json").splitlines()]
        assert (live["state"], live["pid"], live["queues"]) == (
            "live",
            process.pid,
            ["default", "mail"],
        )
        assert (live["tenants"], live["concurrency"], live["running"]) == (["shop"], 4, 0)
        assert live["host"] and live["version"] and live["last_seen"]
        text = workers_listed(db)
        assert text.splitlines()[0].split()[:3] == ["STATE", "WORKER", "HOST"]
        assert f"live   {live['worker_id']}" in text and "0/4" in text
        stop(process)
    (stopped,) = [json.loads(line) for line in workers_listed(db, "--json").splitlines()]
    assert stopped["state"] == "stopped" and stopped["worker_id"] == live["worker_id"]
