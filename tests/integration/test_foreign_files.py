"""dogqueue refuses a SQLite file that is not its own and leaves it byte-for-byte
untouched; a corrupt schema version is a StorageError."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dogqueue import StorageError
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.log import SqliteLogReader

#: Another application's databases: plain, and one whose table names clash with dogqueue's.
FOREIGN_SCHEMAS = {
    "plain": [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO users (name) VALUES ('ada'), ('grace')",
    ],
    "clashing": [
        "CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT, starts TEXT)",
        "INSERT INTO events (title, starts) VALUES ('launch', '2030-01-01')",
        "CREATE TABLE schema_version (version TEXT)",
        "INSERT INTO schema_version VALUES ('3.1')",
    ],
}


def _foreign_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.sqlite"
    conn = sqlite3.connect(path)
    for statement in FOREIGN_SCHEMAS[kind]:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path


def _fingerprint(folder: Path) -> dict[str, str]:
    """The sha256 of every file in `folder` (so a new -wal or -shm file shows too)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.mark.parametrize("kind", list(FOREIGN_SCHEMAS))
async def test_the_backend_refuses_a_foreign_database(tmp_path: Path, kind: str) -> None:
    path = _foreign_file(tmp_path, kind)
    before = _fingerprint(tmp_path)
    backend = SqliteBackend(path)
    with pytest.raises(StorageError, match="is not a dogqueue database"):
        await backend.open()
    assert _fingerprint(tmp_path) == before


@pytest.mark.parametrize("kind", list(FOREIGN_SCHEMAS))
def test_the_log_reader_and_the_cli_refuse_a_foreign_database(tmp_path: Path, kind: str) -> None:
    path = _foreign_file(tmp_path, kind)
    before = _fingerprint(tmp_path)
    with pytest.raises(StorageError, match="not a dogqueue database"):
        asyncio.run(_read(path))
    result = subprocess.run(
        [sys.executable, "-m", "dogqueue", "stats", "--db", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "not a dogqueue database" in result.stderr
    assert "Traceback" not in result.stderr
    assert _fingerprint(tmp_path) == before


async def test_an_empty_file_becomes_a_new_log(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    async with SqliteBackend(path) as backend:
        assert await backend.read_events() == []


async def test_a_non_integer_schema_version_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    async with SqliteBackend(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 'two'")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="schema version 'two' is not an integer"):
        await SqliteBackend(path).open()


async def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"shopping list: eggs, milk\n" * 200)
    before = _fingerprint(tmp_path)
    with pytest.raises(StorageError, match="not a dogqueue database"):
        await SqliteBackend(path).open()
    with pytest.raises(StorageError, match="not a dogqueue database"):
        await _read(path)
    assert _fingerprint(tmp_path) == before


async def _read(path: Path) -> None:
    """Read the file as a log, read-only."""
    log = SqliteLogReader(path)
    try:
        await log.records()
    finally:
        await log.close()
