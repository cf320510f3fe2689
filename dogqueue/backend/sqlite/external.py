"""Enqueue inside the application's own `sqlite3` transaction on the queue's database
file: the job exists if and only if the application's transaction commits.

The engine's units of work are synchronous, so the same unit that `SqliteBackend`
runs in its writer thread runs here on the application's connection, under a
savepoint of the application's transaction instead of a transaction of its own."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import SqliteTransaction
from dogqueue.client.results import JobHandle
from dogqueue.core import validation as check
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.engine import Engine
from dogqueue.ids import new_job_id

if TYPE_CHECKING:
    from dogqueue.client.adapter import QueueAdapter
    from dogqueue.jobs import BaseJob

R = TypeVar("R")

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


def enqueue_in(
    conn: sqlite3.Connection,
    adapter: QueueAdapter[Any],
    ctx: QueueCtx,
    job: BaseJob[Any, R],
    **options: Any,
) -> JobHandle[R]:
    """Enqueue `job` (registered with `adapter`) in `conn`'s current transaction,
    beginning one if none is open; the caller commits or rolls back as usual.

    `conn` must be a `sqlite3` connection to the database file of the adapter's
    SqliteBackend (opened by dogqueue once, so its tables exist). `options` are those of
    `adapter.enqueue` (queue, run_at, idempotency_key, priority, max_retries). Workers
    see the job once the application commits."""
    message = adapter.message_for(job, **options)
    (job_id,) = enqueue_messages_in(conn, ctx, [message], adapter=adapter)
    return JobHandle(job_id, message.job_type)


def enqueue_messages_in(
    conn: sqlite3.Connection,
    ctx: QueueCtx,
    messages: list[JobMessage],
    *,
    adapter: QueueAdapter[Any],
) -> list[str]:
    """Enqueue encoded messages in `conn`'s current transaction, all or none; return
    their ids (see `enqueue_in`)."""
    if not isinstance(conn, sqlite3.Connection):
        raise InvalidInput("conn", "must be a sqlite3.Connection")
    config = adapter.config
    prepared = check.prepare_enqueue(ctx, messages, config)
    try:
        found = conn.execute(Q["schema_version"]).fetchone()
    except sqlite3.OperationalError:
        found = None
    if found is None:
        raise StorageError("the database has no dogqueue tables: open it with SqliteBackend once")
    clock = getattr(adapter.backend, "now", None)
    now = clock() if callable(clock) else datetime.now(UTC)
    engine = Engine(config, new_id=new_job_id, draw=random.random)
    key = getattr(adapter.backend, "audit_key", None)
    tx = SqliteTransaction(cast(sqlite3.Connection, _JoinedConnection(conn)), key)
    tx.begin()
    try:
        ids = engine.enqueue_unit(prepared).run(tx, now)
        tx.commit()
    except BaseException:
        tx.rollback()
        raise
    return ids
