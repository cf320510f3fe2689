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
#: How long a write keeps retrying a busy database before giving up.
BUSY_GIVE_UP_SECONDS = 60.0


def connect(path: str, synchronous: Synchronous, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, busy timeout."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not read_only:
        retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction; return the version found."""

    def run() -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(Q["schema_version_table"])
            row = conn.execute(Q["schema_version"]).fetchone()
            found = 0 if row is None else int(row[0])
            refuse_newer(found)
            for version, script in migrations():
                if version > found:
                    for statement in statements(script):
                        conn.execute(statement)
            if found < CHAIN_SCHEMA_VERSION:
                backfill_chain(conn)
            if found != SCHEMA_VERSION:
                conn.execute(Q["set_schema_version"], (SCHEMA_VERSION,))
            conn.execute("COMMIT")
            return found
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    return retry_busy(run)


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


def retry_busy(action: Callable[[], T]) -> T:
    """Run `action`, retrying while another process holds the lock."""
    deadline = time.monotonic() + BUSY_GIVE_UP_SECONDS
    pause = 0.001
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            if not is_busy(error) or time.monotonic() > deadline:
                raise translate(error) from error
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def translate(error: sqlite3.Error) -> StorageError:
    """dogqueue's error for a driver error."""
    if isinstance(error, sqlite3.OperationalError) and is_busy(error):
        return StorageError(f"database stayed locked for {BUSY_GIVE_UP_SECONDS:.0f}s: {error}")
    if isinstance(error, sqlite3.IntegrityError):
        return StorageError(f"constraint violated (concurrent writer or corrupt log): {error}")
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in str(error):
        return StorageError(f"not a dogqueue database: {error}")
    return StorageError(f"sqlite error: {error}")
