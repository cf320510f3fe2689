"""Opening the database file: pragmas, migrations and error translation."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from dogqueue.backend.sqlite.chain import backfill as backfill_chain
from dogqueue.backend.sqlite.queries import SCHEMA_VERSION, Q, migrations, statements
from dogqueue.core.errors import StorageError

#: synchronous=NORMAL in WAL mode: a commit survives a process crash; a power loss may
#: lose the last commits. FULL: a commit also survives a power loss.
Synchronous = Literal["NORMAL", "FULL"]
T = TypeVar("T")
#: The schema version that added the hash chain; older logs are hashed on upgrade.
CHAIN_SCHEMA_VERSION = 2

#: How long one statement waits for another process's lock before retrying.
BUSY_TIMEOUT_MS = 5_000
#: Pauses between tries of a busy write: short, since a write transaction holds the
#: lock for a few milliseconds, and a waiter asleep while the lock is free is lost
#: throughput (SQLite's own busy handler sleeps up to 100 ms).
FIRST_BUSY_PAUSE = 0.0002
MAX_BUSY_PAUSE = 0.002
#: How long a write keeps retrying a busy database before giving up, by default
#: (`SqliteBackend(lock_wait=...)`; None: for ever).
BUSY_GIVE_UP_SECONDS = 60.0


def connect(
    path: str,
    synchronous: Synchronous,
    *,
    read_only: bool = False,
    lock_wait: float | None = BUSY_GIVE_UP_SECONDS,
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, busy timeout;
    opening waits up to `lock_wait` seconds (None: for ever) for another writer."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    busy_ms = BUSY_TIMEOUT_MS if lock_wait is None else min(BUSY_TIMEOUT_MS, int(lock_wait * 1000))
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    if not read_only:
        try:
            refuse_foreign(conn, path, lock_wait)
        except BaseException:
            conn.close()
            raise
        retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone(), lock_wait)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


#: The first columns of the tables that make a database a dogqueue log (later schema
#: versions add columns); a non-empty database without them is another application's.
_OWN_TABLES = {
    "schema_version": ("id", "version"),
    "events": ("seq", "tenant_id", "job_id", "version", "type", "data"),
}


def refuse_foreign(
    conn: sqlite3.Connection, path: str, lock_wait: float | None = BUSY_GIVE_UP_SECONDS
) -> None:
    """Raise StorageError, having written nothing, unless the database is empty or a
    dogqueue log (its `schema_version` and `events` tables have dogqueue's columns)."""

    def tables() -> list[str]:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return [row[0] for row in conn.execute(query)]

    found = retry_busy(tables, lock_wait)
    if not found:
        return
    for table, columns in _OWN_TABLES.items():
        if table not in found:
            break
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        if tuple(row[1] for row in info)[: len(columns)] != columns:
            break
    else:
        return
    raise StorageError(
        f"{path} is not a dogqueue database: it already holds other tables"
        f" ({', '.join(sorted(found)[:5])}); dogqueue leaves it untouched"
    )


def migrate(
    conn: sqlite3.Connection,
    lock_wait: float | None = BUSY_GIVE_UP_SECONDS,
    audit_key: bytes | None = None,
) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction (chaining old events under
    `audit_key`, if given); return the version found."""

    def run() -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(Q["schema_version_table"])
            row = conn.execute(Q["schema_version"]).fetchone()
            found = 0 if row is None else row[0]
            if not isinstance(found, int):
                raise StorageError(f"corrupt database: schema version {found!r} is not an integer")
            refuse_newer(found)
            for version, script in migrations():
                if version > found:
                    for statement in statements(script):
                        conn.execute(statement)
            if found < CHAIN_SCHEMA_VERSION:
                backfill_chain(conn, audit_key)
            if found != SCHEMA_VERSION:
                conn.execute(Q["set_schema_version"], (SCHEMA_VERSION,))
            conn.execute("COMMIT")
            return found
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    return retry_busy(run, lock_wait)


def refuse_newer(version: int) -> None:
    """StorageError for a database written by a newer dogqueue: its schema is unknown."""
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"database schema version {version} is newer than this dogqueue"
            f" ({SCHEMA_VERSION}); upgrade dogqueue"
        )


def is_busy(error: sqlite3.Error) -> bool:
    """True for lock contention, which waiting resolves."""
    code = getattr(error, "sqlite_errorcode", None)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return True
    text = str(error)
    return "database is locked" in text or "database is busy" in text


def retry_busy(action: Callable[[], T], lock_wait: float | None = BUSY_GIVE_UP_SECONDS) -> T:
    """Run `action`, retrying while another process holds the lock, for up to
    `lock_wait` seconds (None: for ever); past that, StorageError."""
    deadline = None if lock_wait is None else time.monotonic() + lock_wait
    pause = FIRST_BUSY_PAUSE
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            if not is_busy(error) or (deadline is not None and time.monotonic() > deadline):
                raise translate(error, lock_wait) from error
            time.sleep(pause)
            pause = min(pause * 1.5, MAX_BUSY_PAUSE)


def translate(error: sqlite3.Error, lock_wait: float | None = BUSY_GIVE_UP_SECONDS) -> StorageError:
    """dogqueue's error for a driver error (`lock_wait`: how long a busy database was
    waited for)."""
    if isinstance(error, sqlite3.OperationalError) and is_busy(error):
        return StorageError(
            f"database stayed locked for {lock_wait:g}s (another connection holds the write"
            f" lock; nothing was written): {error}"
        )
    if isinstance(error, sqlite3.IntegrityError):
        return StorageError(f"constraint violated (concurrent writer or corrupt log): {error}")
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in str(error):
        return StorageError(f"not a dogqueue database: {error}")
    return StorageError(f"sqlite error: {error}")
