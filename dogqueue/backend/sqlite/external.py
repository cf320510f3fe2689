"""Enqueue inside the application's own `sqlite3` transaction on the queue's database
file: the job exists if and only if the application's transaction commits.

The engine's units of work are synchronous, so the same unit that `SqliteBackend`
runs in its writer thread runs here on the application's connection, under a
savepoint of the application's transaction instead of a transaction of its own."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import SqliteTransaction
from dogqueue.core import validation as check
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.engine import Engine

_SAVEPOINT = "dogqueue_enqueue"


class _JoinedConnection:
    """The application's connection as the engine's transaction sees it: its own
    BEGIN/COMMIT/ROLLBACK become a savepoint inside the application's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        command = sql.strip().upper()
        if command == "BEGIN IMMEDIATE":
            if not self._conn.in_transaction:
                self._conn.execute("BEGIN IMMEDIATE")
            return self._conn.execute(f"SAVEPOINT {_SAVEPOINT}")
        if command == "COMMIT":
            return self._conn.execute(f"RELEASE {_SAVEPOINT}")
        if command == "ROLLBACK":
            self._conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            return self._conn.execute(f"RELEASE {_SAVEPOINT}")
        return self._conn.execute(sql, parameters)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        return self._conn.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction


def enqueue_messages_in(
    conn: object,
    ctx: QueueCtx,
    messages: list[JobMessage],
    *,
    engine: Engine,
    config: QueueConfig,
    now: datetime,
    audit_key: bytes | None,
    path: str,
    trace_context: dict[str, str] | None = None,
) -> list[str]:
    """Enqueue encoded messages in `conn`'s transaction, all or none; return their ids.

    `conn` must be a `sqlite3` connection to the database file at `path` (the queue's,
    opened by dogqueue once, so its tables exist), inside a transaction: one open
    already, or the one its next statement opens (sqlite3's default mode). The caller
    commits or rolls back as usual; workers see the jobs after the commit."""
    if not isinstance(conn, sqlite3.Connection):
        raise InvalidInput("connection", f"must be a sqlite3.Connection, not {type(conn).__name__}")
    if not conn.in_transaction and not _begins_implicitly(conn):
        raise InvalidInput("connection", "must be inside a transaction (autocommit mode)")
    main = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not main or not os.path.samefile(main, path):
        raise InvalidInput("connection", f"is not on the queue's database file {path!r}")
    prepared = check.prepare_enqueue(ctx, messages, config, trace_context=trace_context)
    try:
        found = conn.execute(Q["schema_version"]).fetchone()
    except sqlite3.OperationalError:
        found = None
    if found is None:
        raise StorageError("the database has no dogqueue tables: open it with SqliteBackend once")
    tx = SqliteTransaction(cast(sqlite3.Connection, _JoinedConnection(conn)), audit_key)
    tx.begin()
    try:
        ids = engine.enqueue_unit(prepared).run(tx, now)
        tx.commit()
    except BaseException:
        tx.rollback()
        raise
    return ids


def _begins_implicitly(conn: sqlite3.Connection) -> bool:
    """Whether the connection's next write opens a transaction the caller commits
    (sqlite3's default mode), rather than committing on its own (autocommit)."""
    autocommit = getattr(conn, "autocommit", None)  # Python 3.12+
    if autocommit is True:
        return False
    if autocommit is False:
        return True
    return conn.isolation_level is not None
