"""The SQLite writer: one thread owns the write connection and runs the kit's group
commit batches (`dogqueue.backend.kit.batching`), one transaction each."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from dogqueue.backend.kit.batching import GroupCommit
from dogqueue.backend.sqlite.connection import BUSY_GIVE_UP_SECONDS, is_busy, retry_busy, translate
from dogqueue.backend.sqlite.transaction import LogEndMemo, SqliteTransaction
from dogqueue.core.errors import BackendClosed
from dogqueue.engine import run_units, unwrap_refusal

#: Most units of work in one transaction; bounds the latency a batch adds.
MAX_BATCH = 512
UnitOfWork = Callable[[SqliteTransaction, datetime], Any]


class GroupCommitWriter:
    """Owns the write connection and the thread it lives on."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        now: Callable[[], datetime],
        lock_wait: float | None = BUSY_GIVE_UP_SECONDS,
        audit_key: bytes | None = None,
    ):
        self._lock_wait = lock_wait
        self._audit_key = audit_key
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dogqueue-writer")
        self._connect = connect
        self._now = now
        self._conn: sqlite3.Connection | None = None
        #: The end of the log as this connection's last commit left it.
        self._memo = LogEndMemo()
        self._group: GroupCommit[UnitOfWork] = GroupCommit(
            self._run_on_thread, max_batch=MAX_BATCH, public=_public, splits=_worth_a_split
        )
        self._closing = False
        #: Transactions committed and units of work they held (for tests and benchmarks).
        self.commits = 0
        self.units = 0

    async def call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn(connection)` on the writer thread, outside any batch."""
        self._refuse_if_closing()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._direct, fn)

    def _direct(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        self._memo.forget()  # `fn` may write the log without a transaction of ours
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn)

    async def run(self, work: UnitOfWork) -> Any:
        """Run `work` in the next transaction; return its result once committed."""
        return await self.submit(work)

    def submit(self, work: UnitOfWork) -> asyncio.Future[Any]:
        """Queue `work` for the next transaction; the future resolves once committed.
        With no transaction under way, the batch starts at the end of this turn of the
        event loop (so calls made together share one commit); otherwise it starts when
        the current one has committed."""
        self._refuse_if_closing()
        return self._group.submit(work)

    async def _run_on_thread(self, works: list[UnitOfWork]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._commit, works)

    def _commit(self, works: list[UnitOfWork]) -> list[Any]:
        """On the writer thread: run `works` in one transaction (waiting out a busy
        database up to the lock wait); raise if it failed."""
        results = retry_busy(lambda: self._transaction(works), self._lock_wait)
        self.commits += 1
        self.units += len(works)
        return results

    def _transaction(self, works: list[UnitOfWork]) -> list[Any]:
        if self._conn is None:
            self._conn = self._connect()
        tx = SqliteTransaction(self._conn, self._audit_key, self._memo)
        try:
            tx.begin()
            now = self._now()
            results = run_units(tx, works, now)
            tx.commit()
            return results
        except BaseException:
            tx.rollback()
            raise

    async def close(self) -> None:
        """Finish pending work, then close the connection and stop the thread; work
        submitted from now on is refused with BackendClosed."""
        self._closing = True
        await self._group.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=True)

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise BackendClosed("backend is closed")

    def _close_connection(self) -> None:
        self._memo.forget()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _worth_a_split(error: BaseException) -> bool:
    """Whether running each unit alone may help: not when the database stayed locked
    (waiting again per unit won't help)."""
    cause = error.__cause__
    return not (isinstance(cause, sqlite3.OperationalError) and is_busy(cause))


def _public(error: BaseException) -> BaseException:
    error = unwrap_refusal(error)
    if isinstance(error, sqlite3.Error):
        return translate(error)
    return error
