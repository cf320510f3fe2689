"""The command line's manners, through the real `dogqueue` command: --version, bare help,
piping into `head`, every tenant for an operator, an unknown tenant, escaped output; and
the Prometheus collector users register in their own registry."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import prometheus_client

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.observability import MetricsReader
from dogqueue.observability.prometheus import DogqueueCollector
from tests.audit.cli_run import dogqueue

ROOT = Path(__file__).resolve().parents[2]


async def _log(path: Path, jobs: int = 3) -> None:
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        for tenant in ("acme", "globex"):
            await backend.enqueue_many(
                QueueCtx(tenant),
                [JobMessage(job_type=f"t{n}", payload_bytes=b"{}") for n in range(jobs)],
            )
        lease = await backend.dequeue(QueueCtx("acme"), ["default"])
        assert lease is not None
        await backend.ack_fail(QueueCtx("acme"), lease, "\x1b[2Jgone\nsecond line\x07")


def test_version_and_bare_help() -> None:
    done = dogqueue("--version")
    assert done.returncode == 0 and done.stdout.startswith("dogqueue ")
    bare = dogqueue()
    assert bare.returncode == 0
    assert "usage: dogqueue" in bare.stdout and "COMMAND" in bare.stdout


async def test_jobs_lists_every_tenant_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    await _log(db)
    every = dogqueue("jobs", "--db", str(db))
    assert every.returncode == 0, every.stderr
    assert "acme" in every.stdout and "globex" in every.stdout
    unknown = dogqueue("jobs", "--db", str(db), "--tenant", "nobody")
    assert unknown.returncode == 2
    assert "no tenant 'nobody'" in unknown.stderr


async def test_stored_escapes_are_shown_not_obeyed(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    await _log(db)
    jobs = dogqueue("jobs", "--db", str(db), "--tenant", "acme", "--json")
    job_id = jobs.stdout.split('"job_id": "')[1].split('"')[0]
    history = dogqueue("history", "--db", str(db), "--tenant", "acme", job_id)
    assert history.returncode == 0, history.stderr
    assert "\x1b" not in history.stdout and "\x07" not in history.stdout
    table, below = history.stdout.split("\n\n", 1)
    # The table shows an error's first line; the whole error follows it, preformatted.
    assert "\\x1b[2Jgone…" in table and "second line" not in table
    assert below.splitlines()[1:] == ["\\x1b[2Jgone", "second line\\x07"]


def test_piping_into_head_leaves_no_traceback(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    asyncio.run(_log(db, jobs=1_500))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "dogqueue", "jobs", "--db", str(db), "--limit", "3000"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()  # what `head -1` does
        error = process.stderr.read()
        process.wait(timeout=120)
    assert "Traceback" not in error and "BrokenPipe" not in error, error
    assert process.returncode == 0


async def test_the_collector_serves_dogqueue_metrics_in_a_users_registry(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db", clock=FakeClock()) as backend:
        await backend.enqueue(QueueCtx("acme"), JobMessage(job_type="t", payload_bytes=b"{}"))
        registry = prometheus_client.CollectorRegistry()
        collector = DogqueueCollector()
        registry.register(collector)
        assert b"dogqueue_jobs_enqueued_total" not in prometheus_client.generate_latest(registry)
        collector.update(await MetricsReader(backend).snapshot())
        text = prometheus_client.generate_latest(registry).decode()
    assert re.search(r'dogqueue_jobs_enqueued_total\{[^}]*tenant="acme"[^}]*\} 1\.0', text), text


async def test_a_terminal_gets_rich_tables_with_stored_text_escaped(tmp_path: Path) -> None:
    """On a terminal the tables are drawn by rich; stored escapes stay visible and
    stored text that looks like rich markup is printed as it is."""
    db = tmp_path / "q.db"
    async with SqliteBackend(db, clock=FakeClock()) as backend:
        (job_id,) = await backend.enqueue_many(
            QueueCtx("acme"), [JobMessage(job_type="t", payload_bytes=b"{}")]
        )
        lease = await backend.dequeue(QueueCtx("acme"), ["default"])
        assert lease is not None
        await backend.ack_fail(QueueCtx("acme"), lease, "[red]boom[/red] \x1b[2Jgone")
    command = [sys.executable, "-m", "dogqueue", "history", "--db", str(db)]
    command += ["--tenant", "acme", job_id]
    drawn = _on_a_terminal(command)
    assert "┃" in drawn or "│" in drawn  # rich's box drawing
    assert "[red]boom[/red]" in drawn and "\\x1b[2Jgone" in drawn
    assert "\x1b[2J" not in drawn
    piped = dogqueue(*command[3:])
    assert "│" not in piped.stdout and "[red]boom[/red]" in piped.stdout


def _on_a_terminal(command: list[str]) -> str:
    """What `command` prints to a pseudo-terminal 200 columns wide."""
    import pty

    leader, follower = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200", TERM="xterm")
    process = subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors
    return b"".join(chunks).decode()
