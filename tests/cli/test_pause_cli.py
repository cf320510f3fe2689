"""`dogqueue pause`, `dogqueue resume` and `dogqueue schedules pause|resume|run-now`
through the real command: events in the log, read back by a worker process that stops
leasing from the paused queue and starts again on resume."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from dogqueue import JobStatus, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.controls import ALL_TENANTS_CTX, read_controls
from dogqueue.core.controls import Controls
from dogqueue.core.events import QueuePaused
from tests.runtime.helpers import until_status

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ACME = QueueCtx("tenant-1")
sys.path.insert(0, str(EXAMPLES))
from worker_process import Greet, make_adapter  # noqa: E402


def env() -> dict[str, str]:
    variables = dict(os.environ)
    variables["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(EXAMPLES), variables.get("PYTHONPATH")])
    )
    return variables


def dogqueue(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dogqueue", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env())


async def controls_of(db: Path, ctx: QueueCtx) -> Controls:
    async with SqliteBackend(db) as backend:
        return await read_controls(backend, ctx)


async def test_pause_and_resume_record_events_and_say_what_they_did(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        adapter, _ = await make_adapter(backend)
        await adapter.enqueue(ACME, Greet(name="x"))
    scope = ("--db", str(db), "--tenant", "tenant-1")

    paused = dogqueue("pause", *scope, "--queue", "mail", "--actor", "cli:alice")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == "paused queue 'mail' of tenant 'tenant-1', recorded as cli:alice\n"
    again = dogqueue("pause", *scope, "--queue", "mail")
    assert again.returncode == 0
    assert "was paused already: nothing changed" in again.stdout
    assert (await controls_of(db, ACME)).paused_queues == {"mail"}

    everyone = dogqueue("pause", "--db", str(db), "--all-tenants", "--queue", "reports")
    assert everyone.returncode == 0 and "of every tenant" in everyone.stdout
    assert (await controls_of(db, ALL_TENANTS_CTX)).paused_queues == {"reports"}

    resumed = dogqueue("resume", *scope, "--queue", "mail")
    assert resumed.returncode == 0 and resumed.stdout.startswith("resumed queue 'mail'")
    assert (await controls_of(db, ACME)).paused_queues == frozenset()
    async with SqliteBackend(db) as backend:
        paused_events = [e for e in await backend.read_events() if isinstance(e, QueuePaused)]
    assert [(e.tenant_id, e.queue) for e in paused_events] == [
        ("tenant-1", "mail"),
        (ALL_TENANTS_CTX.tenant_id, "reports"),
    ]
    assert paused_events[0].actor == "cli:alice"
    assert (paused_events[1].actor or "").startswith("cli")  # cli:LOGIN by default

    verified = dogqueue("verify", "--db", str(db))
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_refusals_exit_2_and_append_nothing(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        adapter, _ = await make_adapter(backend)
        await adapter.enqueue(ACME, Greet(name="x"))
        before = len(await backend.read_events())
    no_scope = dogqueue("pause", "--db", str(db), "--queue", "mail")
    assert no_scope.returncode == 2 and "--tenant" in no_scope.stderr
    bad_name = dogqueue("schedules", "pause", "a@b", "--db", str(db), "--tenant", "tenant-1")
    assert bad_name.returncode == 2 and "name" in bad_name.stderr
    no_name = dogqueue("schedules", "run-now", "--db", str(db), "--tenant", "tenant-1")
    assert no_name.returncode == 2
    async with SqliteBackend(db) as backend:
        assert len(await backend.read_events()) == before


async def test_schedule_commands(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    async with SqliteBackend(db) as backend:
        await make_adapter(backend)
    scope = ("--db", str(db), "--tenant", "tenant-1")
    paused = dogqueue("schedules", "pause", "nightly", "hourly", *scope)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.splitlines()[1].startswith("paused schedule 'hourly' of tenant")
    ran = dogqueue("schedules", "run-now", "nightly", *scope)
    assert ran.returncode == 0 and "asked a worker to run schedule 'nightly'" in ran.stdout
    resumed = dogqueue("schedules", "resume", "hourly", *scope)
    assert resumed.returncode == 0
    controls = await controls_of(db, ACME)
    assert controls.paused_schedules == {"nightly"}
    assert controls.run_requests == (("nightly", 3),)


async def test_a_worker_process_obeys_pause_and_resume_from_the_command(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    scope = ("--db", str(db), "--tenant", "tenant-1")
    async with SqliteBackend(db) as backend:
        adapter, _ = await make_adapter(backend)
        assert dogqueue("pause", *scope, "--queue", "mail").returncode == 0
        held = await adapter.enqueue(ACME, Greet(name="held"), queue="mail")
        free = await adapter.enqueue(ACME, Greet(name="free"))
        process = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child)
            [
                *(sys.executable, "-m", "dogqueue", "worker", "worker_process:make_adapter"),
                *(*scope, "--queue", "mail", "--queue", "default"),
            ],
            env=env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            await until_status(backend, ACME, free, JobStatus.COMPLETED)
            await asyncio.sleep(2.5)
            assert await backend.get_status(ACME, held) is JobStatus.ENQUEUED
            assert dogqueue("resume", *scope, "--queue", "mail").returncode == 0
            await until_status(backend, ACME, held, JobStatus.COMPLETED)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
