"""Every command that prints what a log holds, run through the real `dogqueue` command
over a log whose every text field (tenant, job type, queue, idempotency and schedule
keys, error text, progress message, actor) holds terminal escapes (ESC ] 0;...BEL,
ESC [2J, CR, a C1 CSI): no raw control byte reaches standard output, and the stored text
is shown, escaped. Names with control characters are refused at enqueue, so the log is
written with same-length markers and the markers are then overwritten in the file, as an
attacker with write access to it (or an older writer) could."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.cli import build_parser
from dogqueue.core import cron
from dogqueue.core.workers import WorkerPresence

ROOT = Path(__file__).resolve().parents[2]
#: Retitles the terminal, clears it, returns the carriage and opens a C1 CSI.
ESCAPES = "\x1b]0;T\x07\x1b[2J\r\u009b"
#: Written where names cannot hold ESCAPES, then overwritten by it byte for byte.
MARK = "QXQXQXQXQXQXQ"
assert len(MARK.encode()) == len(ESCAPES.encode())
#: A control character other than newline and tab, C0 or C1.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: Commands that never print stored text: they run a process or serve pages.
NOT_PRINTING = {
    "demo": "prints its own demo",
    "import": "needs a PostgreSQL target (tests/integration/test_postgres_import.py)",
    "web": "serves HTML",
    "worker": "runs jobs",
}
#: Commands whose output over this log holds no stored text (only counts, paths, and
#: the names given on the command line).
COUNTS_ONLY = {"archive", "migrate", "replay", "pause", "resume"}
START = datetime(2030, 1, 1, tzinfo=UTC)


async def _write_log(path: Path) -> str:
    """Jobs of a plain tenant and of a marked one, every text field marked; returns
    the id of the plain tenant's failed job."""
    clock = FakeClock(START)
    async with SqliteBackend(path, clock=clock) as backend:
        failed = ""
        for tenant in ("acme", f"t{MARK}"):
            ctx = QueueCtx(tenant)
            job_id = await backend.enqueue(
                ctx,
                JobMessage(
                    job_type=f"j{MARK}",
                    queue=f"q{MARK}",
                    payload_bytes=ESCAPES.encode(),
                    idempotency_key=f"k{MARK}",
                    max_retries=0,
                ),
            )
            tick_key = cron.tick_key(f"s{MARK}", START)
            await backend.enqueue(
                ctx, JobMessage(job_type="tick", payload_bytes=b"", idempotency_key=tick_key)
            )
            lease = await backend.dequeue(ctx, [f"q{MARK}"], lease_duration=timedelta(minutes=5))
            assert lease is not None and lease.job_id == job_id
            await backend.heartbeat(ctx, lease, progress=0.5, progress_message=f"p{MARK}{ESCAPES}")
            clock.advance(timedelta(seconds=3))
            await backend.ack_fail(ctx, lease, f"ValueError: {ESCAPES} e{MARK}", retry=False)
            waiting = await backend.enqueue(ctx, JobMessage(job_type=f"w{MARK}", payload_bytes=b""))
            await backend.cancel_job(ctx, waiting, actor=f"a{MARK}")
            if tenant == "acme":
                failed = job_id
        text = f"w{ESCAPES}"  # stored JSON-escaped: the forgery below does not reach it
        await backend.announce_worker(
            WorkerPresence(
                worker_id="w-hostile",
                host=text,
                pid=1,
                queues=(text,),
                tenants=(text,),
                concurrency=1,
                running=0,
                version=text,
                started_at=clock(),
                last_seen=clock(),
            )
        )
        return failed


def _forge(path: Path) -> None:
    data = path.read_bytes()
    assert MARK.encode() in data
    path.write_bytes(data.replace(MARK.encode(), ESCAPES.encode()))


@pytest.fixture(scope="module")
def hostile_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("escaping") / "queue.db"
    job_id = asyncio.run(_write_log(path))
    assert not Path(f"{path}-wal").exists()
    _forge(path)
    return path, job_id


def _commands(db: str, job_id: str) -> dict[str, list[list[str]]]:
    """Each command that prints stored text, in each of its output forms."""
    one = ["--tenant", "acme", job_id]
    return {
        "history": [["history", "--db", db, *one], ["history", "--db", db, "--json", *one]],
        "explain": [["explain", "--db", db, *one]],
        "jobs": [["jobs", "--db", db], ["jobs", "--db", db, "--json"]],
        "stats": [["stats", "--db", db], ["stats", "--db", db, "--json"]],
        "metrics": [
            ["metrics", "--db", db, "--format", form] for form in ("text", "json", "prometheus")
        ],
        "schedules": [["schedules", "--db", db], ["schedules", "--db", db, "--json"]],
        "workers": [["workers", "--db", db], ["workers", "--db", db, "--json"]],
        "verify": [["verify", "--db", db]],
        **{
            control: [[control, "--db", db, "--tenant", "acme", "--queue", "mail"]]
            for control in ("pause", "resume")
        },
        "checkpoint": [["checkpoint", "--db", db]],
        "migrate": [["migrate", "--db", db]],
        "replay": [["replay", "--db", db]],
        "archive": [["archive", "--db", db, "--before", "2029-01-01", "--to", db + ".archive"]],
        **{
            action: [[action, "--db", db, "--all-tenants", "--dry-run"]]
            for action in ("cancel", "retry", "requeue")
        },
    }


def _subcommands() -> set[str]:
    parser = build_parser()
    [subparsers] = [a for a in parser._actions if a.dest == "command"]
    return set(subparsers.choices)  # type: ignore[arg-type]


def test_every_command_is_covered(hostile_log: tuple[Path, str]) -> None:
    covered = set(_commands("db", "id"))
    assert covered | set(NOT_PRINTING) == _subcommands()


@pytest.mark.parametrize("command", sorted(_commands("db", "id")))
def test_no_raw_control_byte_reaches_stdout(hostile_log: tuple[Path, str], command: str) -> None:
    path, job_id = hostile_log
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="400")
    for args in _commands(str(path), job_id)[command]:
        result = subprocess.run(
            [sys.executable, "-m", "dogqueue", *args],
            capture_output=True,
            timeout=120,
            env=env,
            check=False,
        )
        out = result.stdout.decode("utf-8", "surrogateescape")
        assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
        assert not RAW_CONTROL.search(out), (args, RAW_CONTROL.findall(out))
        if command not in COUNTS_ONLY:  # the stored text is shown, escaped
            assert "\\x1b" in out or "\\u001b" in out, (args, out)
