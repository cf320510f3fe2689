"""Opening a queue from --db (a path or a URL, DOGQUEUE_DB by default), read-only reading
of logs, and the verifier's check of events not yet given a position."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from dogqueue import FakeClock, InvalidInput, StorageError
from dogqueue.audit.verify import verify_log
from dogqueue.backend import locate
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.memory_log import MemoryLogReader
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.log.reader import LogPos, LogReader, LogRecord, TenantPos, WriterSeq
from tests.audit.audit_workload import write_story
from tests.audit.cli_run import dogqueue

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
Story = tuple[Path, dict[str, str]]
READING = [
    ["verify"],
    ["checkpoint"],
    ["replay"],
    ["stats"],
    ["stats", "--as-of", "3"],
    ["jobs", "--tenant", "acme"],
    ["jobs", "--tenant", "acme", "--as-of", "4"],
    ["metrics", "--format", "json"],
]


def test_open_backend_and_open_log_take_a_path(tmp_path: Path) -> None:
    backend = locate.open_backend(tmp_path / "q.db", clock=FakeClock())
    assert isinstance(backend, SqliteBackend) and backend.path == str(tmp_path / "q.db")
    assert isinstance(locate.open_log(tmp_path / "q.db"), LogReader)
    with pytest.raises(InvalidInput) as error:
        locate.open_backend("  ")
    assert error.value.field == "db"


async def test_a_missing_sqlite_log_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    log = locate.open_log(tmp_path / "none.db")
    with pytest.raises(InvalidInput, match="no database at"):
        await log.records()
    assert not (tmp_path / "none.db").exists()


def test_schema_parameter_is_taken_out_of_the_url() -> None:
    url = "postgresql://app:secret@db.internal:5432/queue?sslmode=disable&schema=jobs_eu"
    assert locate.split_schema(url) == (
        "postgresql://app:secret@db.internal:5432/queue?sslmode=disable",
        "jobs_eu",
    )
    assert locate.split_schema("postgres://db/queue") == ("postgres://db/queue", None)
    assert locate.is_postgres_url("postgres://db/q") and locate.is_postgres_url("POSTGRESQL://x")
    assert not locate.is_postgres_url("queue.db")
    assert not locate.is_postgres_url("/var/lib/postgresql/queue.db")


def test_a_url_opens_the_postgres_backend_with_its_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, dict[str, Any]]] = []

    class Recorded:
        def __init__(self, dsn: str, **kwargs: Any) -> None:
            made.append((dsn, kwargs))

    module = types.ModuleType("dogqueue.backend.postgres")
    module.PostgresBackend = Recorded  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dogqueue.backend.postgres", module)
    clock = FakeClock()
    locate.open_backend("postgresql://db/queue?schema=eu&application_name=x", clock=clock)
    locate.open_backend("postgres://db/queue")
    assert made == [
        ("postgresql://db/queue?application_name=x", {"schema": "eu", "clock": clock}),
        ("postgres://db/queue", {}),
    ]


def test_without_the_postgres_backend_a_url_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "dogqueue.backend.postgres", None)
    for opener in (locate.open_backend, locate.open_log):
        with pytest.raises(StorageError, match="PostgreSQL backend is not available"):
            opener("postgresql://db/queue")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("args", READING, ids=" ".join)
def test_reading_commands_never_migrate_or_write(args: list[str], tmp_path: Path) -> None:
    """On a log of an earlier schema version: read as it is, the file left unchanged."""
    path = tmp_path / "story-v2.db"
    shutil.copyfile(GOLDEN / "story-v2.db", path)
    before = _digest(path)
    result = dogqueue(*args, "--db", path)
    assert result.returncode == 0, result.stderr
    assert _digest(path) == before
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert conn.execute("SELECT version FROM schema_version").fetchone() == (2,)
    conn.close()


def test_dogqueue_db_is_the_default_for_db(story_log: Story) -> None:
    path, ids = story_log
    by_env = dogqueue("history", "--tenant", "acme", ids["retried"], env={locate.DB_ENV: str(path)})
    by_flag = dogqueue("history", "--db", path, "--tenant", "acme", ids["retried"])
    assert by_env.returncode == 0 and by_env.stdout == by_flag.stdout
    flag_wins = dogqueue("stats", "--db", path, env={locate.DB_ENV: str(path) + ".nope"})
    assert flag_wins.returncode == 0
    for command in ("stats", "verify", "metrics"):
        missing = dogqueue(command)
        assert missing.returncode == 2
        assert locate.DB_ENV in missing.stderr


def test_every_command_takes_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each log command hands a postgresql:// URL to the PostgreSQL backend (here absent:
    the error names it), never to SQLite as a file name."""
    for args in (*READING, ["history", "--tenant", "a", "j"], ["explain", "--tenant", "a", "j"]):
        result = dogqueue(*args, env={locate.DB_ENV: "postgresql://127.0.0.1:1/none?schema=x"})
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "postgres" in result.stderr.lower() and "no database" not in result.stderr


class _Unsealing:
    """A memory log whose last `n` events have not been given a position yet."""

    def __init__(self, inner: MemoryLogReader, n: int) -> None:
        self.inner = inner
        self.n = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        everything = await self.inner.records()
        sealed = [r for r in everything[: len(everything) - self.n] if r.pos > after]
        return sealed[:limit]

    async def unsealed(self) -> list[LogRecord]:
        tail = (await self.inner.records())[-self.n :]
        return [
            r._replace(pos=LogPos(0), hash=None, tpos=TenantPos(0), writer_seq=WriterSeq(r.pos))
            for r in tail
        ]

    async def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        heads: dict[str, tuple[int, bytes]] = {}
        for record in await self.records():
            heads[record.tenant_id] = (record.pos, record.hash or b"")
        return heads


async def test_unsealed_events_are_folded_and_their_versions_checked(clock: FakeClock) -> None:
    async with MemoryBackend(clock=clock) as backend:
        await write_story(backend, clock)
        log = _Unsealing(backend.log_reader(), 3)
        report = await verify_log(log)
        assert report.ok, report.problems
        assert report.events == len(await backend.read_events()) - 3

        class Gap(_Unsealing):
            async def unsealed(self) -> list[LogRecord]:
                tail = await super().unsealed()
                return [*tail, tail[-1]]  # one job's version given twice

        gapped = await verify_log(Gap(backend.log_reader(), 3))
        assert not gapped.ok
        assert [p.what for p in gapped.problems if "unsealed event" in p.what] == [
            next(p.what for p in gapped.problems if "expected" in p.what)
        ]
