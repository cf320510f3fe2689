"""Group commit: one writer thread runs the units of work of many callers in one
transaction, and resumes each caller only after the commit that holds its events."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from dogqueue.backend.sqlite.connection import BUSY_GIVE_UP_SECONDS, is_busy, retry_busy, translate
from dogqueue.backend.sqlite.transaction import LogEndMemo, SqliteTransaction
from dogqueue.core.errors import BackendClosed
from dogqueue.engine import deliver, run_units, unwrap_refusal

#: Most units of work in one transaction; bounds the latency a batch adds.
MAX_BATCH = 512
UnitOfWork = Callable[[SqliteTransaction, datetime], Any]
_Batch = list[tuple[UnitOfWork, "asyncio.Future[Any]"]]


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
        self._pending: _Batch = []
        #: A batch is on the writer thread (or its results are on their way back).
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((work, future))
        if not self._busy:
            self._busy = True
            self._idle.clear()
            loop.call_soon(self._start_batch, loop)
        return future

    def _start_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending[:MAX_BATCH]
        del self._pending[:MAX_BATCH]
        self._executor.submit(self._run_and_report, loop, batch)

    def _run_and_report(self, loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        """On the writer thread: run the batch, then hand the results to the loop in
        one call (no future to wrap, no task to wake in between)."""
        try:
            results = self._run_batch([work for work, _ in batch])
        except BaseException as error:  # the thread itself failed: fail the batch
            results = [error] * len(batch)
        with contextlib.suppress(RuntimeError):  # a closed loop has no caller left to tell
            loop.call_soon_threadsafe(self._finish_batch, loop, batch, results)

    def _finish_batch(
        self, loop: asyncio.AbstractEventLoop, batch: _Batch, results: list[Any]
    ) -> None:
        deliver([future for _, future in batch], results)
        if self._pending:  # queued while this batch ran: the writer stays busy
            self._start_batch(loop)
        else:
            self._busy = False
            self._idle.set()

    def _run_batch(self, works: list[UnitOfWork]) -> list[Any]:
        try:
            results = retry_busy(lambda: self._transaction(works), self._lock_wait)
            self.commits += 1
            self.units += len(works)
            return results
        except BaseException as error:
            if len(works) == 1 or _locked_out(error):  # waiting again per unit won't help
                return [_public(error)] * len(works)
        # One unit broke the batch: run each alone, so it fails by itself.
        return [self._run_batch([work])[0] for work in works]

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
        while self._busy:
            await asyncio.shield(self._idle.wait())
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


def _locked_out(error: BaseException) -> bool:
    cause = error.__cause__
    return isinstance(cause, sqlite3.OperationalError) and is_busy(cause)


def _public(error: BaseException) -> BaseException:
    error = unwrap_refusal(error)
    if isinstance(error, sqlite3.Error):
        return translate(error)
    return error
