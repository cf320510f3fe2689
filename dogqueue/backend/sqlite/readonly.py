"""Opening a SQLite file read-only, on read-only media too.

A WAL-mode database opened with `mode=ro` still needs its `-shm` file, which SQLite
creates next to the database; on a read-only mount (or in a directory the reader may
not write) that fails with "unable to open database file". There the file is opened
with SQLite's `immutable=1` instead, which reads the database file alone, with no
locks and no side files. That is exact only when no write-ahead log holds committed
pages the database file lacks, so a non-empty `-wal` without its `-shm` is refused
rather than read without it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from dogqueue.core.errors import InvalidInput


def connect_read_only(path: str) -> sqlite3.Connection:
    """A read-only connection to the database at `path`, immutable on read-only media;
    sqlite3.Error if it cannot be opened."""
    try:
        return _checked(_connect(path, "mode=ro"))
    except sqlite3.Error:
        if not on_read_only_media(path):
            raise
    _refuse_unreadable_wal(path)
    return _checked(_connect(path, "mode=ro&immutable=1"))


def on_read_only_media(path: str) -> bool:
    """Whether the directory of `path` cannot be written: a read-only file system, or
    one this process has no write permission on."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        read_only_mount = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_mount = False
    return read_only_mount or not os.access(directory, os.W_OK)


def _refuse_unreadable_wal(path: str) -> None:
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if wal.exists() and wal.stat().st_size > 0 and not shm.exists():
        raise InvalidInput(
            "db",
            f"{path} is on read-only media with a write-ahead log ({wal.name}) but no"
            f" {shm.name}: its last commits cannot be read there; copy the database with"
            " `sqlite3 DB .backup COPY` (or checkpoint it) before moving it",
        )


def _connect(path: str, parameters: str) -> sqlite3.Connection:
    uri = "file:" + quote(str(Path(path).resolve())) + "?" + parameters
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def _checked(conn: sqlite3.Connection) -> sqlite3.Connection:
    """`conn` once a first read succeeded (SQLite opens files lazily)."""
    try:
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn
