"""The SQLite writer: one thread owns the write connection and runs the kit's group
commit batches (`dogqueue.backend.kit.batching`), one transaction each.

A batch of one small unit (a lone caller's) may commit on the event loop instead,
without the two thread hops, if the thread is idle and the write lock is free at once:
within the call itself when nothing else is ready to run on the loop (the caller's
`await` then never suspends), else in the batch's own turn. The connection never waits
for a lock inside SQLite, and no commit of this connection checkpoints the WAL
(`WalCheckpointer` does, on a thread of its own), so the event loop is held for one
transaction of one small unit, at most.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple

from dogqueue.backend.kit.batching import GroupCommit
from dogqueue.backend.sqlite.catchup import ProjectionCheckpointer, checkpoint_position
from dogqueue.backend.sqlite.chain import fold_heads
from dogqueue.backend.sqlite.checkpointer import WalCheckpointer
from dogqueue.backend.sqlite.connection import BUSY_GIVE_UP_SECONDS, is_busy, retry_busy, translate
from dogqueue.backend.sqlite.projection import LogProjection
from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import LogEndMemo, SqliteTransaction
from dogqueue.core.errors import BackendClosed
from dogqueue.engine import run_units, unwrap_refusal

logger = logging.getLogger(__name__)
#: Most units of work in one transaction; bounds the latency a batch adds.
MAX_BATCH = 512
#: Events a checkpoint may be behind the log at open before it is brought up first
#: (rather than folded into memory).
FAR_BEHIND = 20_000
#: The shortest wait before the timer looks for a checkpoint due by time (with a clock
#: that moves by leaps, as a test's does, every look might find one due).
IDLE_CHECK_SECONDS = 0.5
UnitOfWork = Callable[[SqliteTransaction, datetime], Any]


class _Pending(NamedTuple):
    """A unit waiting for a batch, and whether it may commit on the event loop alone."""

    work: UnitOfWork
    small: bool


class GroupCommitWriter:
    """Owns the write connection and the thread it lives on."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        now: Callable[[], datetime],
        lock_wait: float | None = BUSY_GIVE_UP_SECONDS,
        audit_key: bytes | None = None,
        *,
        checkpointer: WalCheckpointer | None = None,
        projection_checkpointer: ProjectionCheckpointer | None = None,
        lone_units_inline: bool = False,
    ):
        #: What checkpoints the WAL (None: this connection's own commits do).
        self.checkpointer = checkpointer
        #: What writes the projection's checkpoint tables (None: nothing does).
        self.projection_checkpointer = projection_checkpointer
        #: The projection in memory, touched only by whoever holds the connection.
        self.projection = LogProjection()
        self._lock_wait = lock_wait
        self._lone_units_inline = lone_units_inline
        #: The last call handed to the thread (the thread is idle once it is done).
        self._last_on_thread: Future[Any] | None = None
        self._audit_key = audit_key
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dogqueue-writer")
        self._connect = connect
        self._now = now
        self._conn: sqlite3.Connection | None = None
        #: The transaction object, made once per connection.
        self._tx: SqliteTransaction | None = None
        #: The end of the log as this connection's last commit left it.
        self._memo = LogEndMemo()
        self._group: GroupCommit[_Pending] = GroupCommit(
            self._run_batch,
            max_batch=MAX_BATCH,
            public=_public,
            splits=_worth_a_split,
            run_alone=self._run_alone,
        )
        self._closing = False
        #: The timer that checks for a checkpoint due by time while no commit comes,
        #: and the checks it started.
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_checks: set[asyncio.Future[None]] = set()
        #: Transactions committed, units of work they held, and those of them committed
        #: on the event loop (for tests and benchmarks).
        self.commits = 0
        self.units = 0
        self.inline_commits = 0

    async def call(
        self, fn: Callable[[sqlite3.Connection], Any], *, rewrites_log: bool = False
    ) -> Any:
        """Run `fn(connection)` on the writer thread, outside any batch. `rewrites_log`:
        it rewrites the log or the checkpoint (an import, a rebuild), so the projection
        in memory starts again from the checkpoint."""
        self._refuse_if_closing()
        return await self._on_thread(self._direct, fn, rewrites_log)

    async def read(self, fn: Callable[[LogProjection], Any]) -> Any:
        """`fn(projection)` on the projection caught up with the log's committed end
        (on the event loop when the thread is idle and SQLite answers at once, else on
        the thread, waiting out a busy database)."""
        self._refuse_if_closing()
        if self._conn is not None and self._thread_idle():
            try:
                return self._read_now(fn)
            except sqlite3.OperationalError as error:
                if not is_busy(error):
                    raise translate(error) from error
        return await self._on_thread(
            lambda: retry_busy(lambda: self._read_now(fn), self._lock_wait)
        )

    async def load_projection(self) -> None:
        """Load the projection (checkpoint + tail) on the thread, off the event loop. A
        checkpoint far behind the log is first brought up to its end (the tail folded
        into the tables, a page per transaction), so that memory holds none of it."""
        self._refuse_if_closing()
        await self._on_thread(self._load_projection)

    def _load_projection(self) -> None:
        conn = self._connection()
        if conn.execute(Q["unfolded_events"]).fetchone()[0] > self._memo.fold_every:
            self._fold_heads(conn)  # writers that stopped before folding left them
        if self.projection_checkpointer is not None:
            behind = conn.execute(Q["next_seq"]).fetchone()[0] - 1 - checkpoint_position(conn)
            if behind > FAR_BEHIND:
                # On the checkpointer's connection, whose commits checkpoint the WAL
                # (this one's do not: the WAL would grow by the whole tail).
                self.projection_checkpointer.flush()
        retry_busy(lambda: self._read_now(lambda p: None), self._lock_wait)

    def _read_now(self, fn: Callable[[LogProjection], Any]) -> Any:
        conn = self._connection()
        projection = self.projection
        # One snapshot for the checkpoint, the tail and `fn` (which may read checkpoint
        # rows: they must be no later than the tail folded).
        conn.execute("BEGIN")
        try:
            try:
                if not projection.loaded:
                    projection.load_checkpoint(conn)
                projection.catch_up(conn)
            except BaseException:
                projection.reset()  # it may be half loaded: start again next time
                raise
            return fn(projection)
        finally:
            conn.execute("COMMIT")

    async def data_version(self) -> int:
        """The write connection's `PRAGMA data_version`: it changes when another
        connection commits (never for this one's own commits)."""

        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute(Q["data_version"]).fetchone()[0])

        self._refuse_if_closing()  # else it would open the connection again on the thread
        if self._conn is not None and self._thread_idle():
            return read(self._conn)  # a read of a few microseconds: no thread hop
        return int(await self._on_thread(lambda: read(self._connection())))

    async def _on_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            on_thread = self._executor.submit(fn, *args)
        except RuntimeError:  # the thread has stopped: a call that raced close()
            if self._closing:
                raise BackendClosed("backend is closed") from None
            raise
        self._last_on_thread = on_thread
        return await asyncio.wrap_future(on_thread)

    def _direct(self, fn: Callable[[sqlite3.Connection], Any], rewrites_log: bool) -> Any:
        self._memo.forget()  # `fn` may write the log without a transaction of ours
        if rewrites_log:
            self.projection.reset()
        return fn(self._connection())

    def _connection(self) -> sqlite3.Connection:
        """The write connection, opened on first use. It never waits inside SQLite for
        a lock: SQLite's busy handler sleeps up to 100 ms between tries, so with several
        processes writing, the lock would sit free while every waiter sleeps; the thread
        retries after short pauses instead (`retry_busy`), and the event loop never
        waits (it hands the unit to the thread)."""
        if self._conn is None:
            self._conn = self._connect()
            self._conn.execute("PRAGMA busy_timeout = 0")
            if self.checkpointer is not None:
                self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        return self._conn

    async def run(self, work: UnitOfWork) -> Any:
        """Run `work` in the next transaction; return its result once committed."""
        return await self.submit(work)

    def submit(self, work: UnitOfWork, *, small: bool = False) -> asyncio.Future[Any]:
        """Queue `work` for the next transaction; the future resolves once committed.
        With no transaction under way, the batch starts at the end of this turn of the
        event loop (so calls made together share one commit); otherwise it starts when
        the current one has committed. A `small` unit that is a batch by itself may
        commit on the event loop, even before this returns (see the module's docstring)."""
        self._refuse_if_closing()
        return self._group.submit(_Pending(work, small))

    def commit_now(self, work: UnitOfWork) -> list[Any] | None:
        """Commit a small unit within the call, as `submit(work, small=True)` would when
        it is alone (see the module's docstring): its results (an error among them is
        its caller's), or None if it may not (nothing ran: submit it)."""
        self._refuse_if_closing()
        if not self._lone_units_inline:  # FULL: never on the loop; `submit` without a second look
            return None
        return self._group.run_at_once(_Pending(work, True))

    async def _run_batch(self, batch: list[_Pending]) -> list[Any]:
        try:
            if len(batch) == 1:
                results = self._run_alone(batch[0])
                if results is not None:
                    return results
            return list(await self._on_thread(self._commit, [pending.work for pending in batch]))
        finally:
            self._arm_idle_checkpoint()

    def _arm_idle_checkpoint(self) -> None:
        """On the event loop after a batch: if it left events the projection's
        checkpoint does not cover, look again when they are due by time, so that a
        process that stops writing still checkpoints them then."""
        checkpointer = self.projection_checkpointer
        if checkpointer is None or self._idle_timer is not None or self._closing:
            return
        wait = checkpointer.seconds_until_due()
        if wait is not None:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(max(wait, IDLE_CHECK_SECONDS), self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        check = asyncio.ensure_future(self.checkpoint_if_due())
        self._idle_checks.add(check)
        check.add_done_callback(self._idle_checks.discard)

    async def checkpoint_if_due(self) -> None:
        """Start the checkpoint of the events committed since the last one if they are
        due by time (the writer's timer calls this when no commit came to check)."""
        checkpointer = self.projection_checkpointer
        if checkpointer is None or self._closing:
            return
        await self._on_thread(checkpointer.note_idle, self.projection)
        self._arm_idle_checkpoint()

    def _run_alone(self, pending: _Pending) -> list[Any] | None:
        """Commit a small unit that is a batch by itself on the event loop, if it may;
        else None (it goes to the thread)."""
        if pending.small and self._may_run_inline():
            results = self._run_inline(pending.work)
            self._arm_idle_checkpoint()
            return results
        return None

    def _may_run_inline(self) -> bool:
        return self._lone_units_inline and self._conn is not None and self._thread_idle()

    def _thread_idle(self) -> bool:
        """On the event loop: whether nothing handed to the thread still runs. A finished
        call is forgotten (`Future.done` takes a lock: a lone caller asks every call)."""
        last = self._last_on_thread
        if last is None:
            return True
        if last.done():
            self._last_on_thread = None
            return True
        return False

    def _run_inline(self, work: UnitOfWork) -> list[Any] | None:
        """Commit `work` alone on the event loop; None if another connection holds the
        write lock (the unit then waits on the thread, like any other)."""
        try:
            results, writes, now = self._transaction([work])
        except sqlite3.OperationalError as error:
            if is_busy(error):
                return None
            raise
        self._committed(1, writes, now)
        self.inline_commits += 1
        return results

    def _commit(self, works: list[UnitOfWork]) -> list[Any]:
        """On the writer thread: run `works` in one transaction (waiting out a busy
        database up to the lock wait); raise if it failed."""
        self._connection()
        results, writes, now = retry_busy(lambda: self._transaction(works), self._lock_wait)
        self._committed(len(works), writes, now)
        return results

    def _committed(self, units: int, writes: int, now: datetime) -> None:
        self.commits += 1
        self.units += units
        if self.checkpointer is not None:
            self.checkpointer.note_commit(writes)
        if self.projection_checkpointer is not None:
            # The transaction's time: a checkpoint due by time needs no clock read per commit.
            self.projection_checkpointer.note_events(writes, self.projection, now.timestamp())

    def _transaction(self, works: list[UnitOfWork]) -> tuple[list[Any], int, datetime]:
        """Run `works` in one transaction; their results, the job writes committed, and
        the transaction's time."""
        assert self._conn is not None  # connected by `_connection`
        tx = self._tx
        if tx is None or tx.conn is not self._conn:  # `begin` resets it for each use
            tx = self._tx = SqliteTransaction(
                self._conn, self._audit_key, self._memo, self.projection
            )
        try:
            tx.begin()
            now = self._now()
            results = run_units(tx, works, now)
            writes = tx.writes
            tx.commit()
            return results, writes, now
        except BaseException:
            tx.rollback()
            raise

    def holding(self) -> str:
        """What it holds now (for a report on a close or a caller that does not end)."""
        last = self._last_on_thread
        thread = "idle" if last is None or last.done() else "busy"
        return (
            f"group commit: {self._group.holding()}; thread {thread};"
            f" {len(self._idle_checks)} idle checks; closing {self._closing}"
        )

    async def close(self) -> None:
        """Finish pending work, then close the connection and stop the thread; work
        submitted from now on is refused with BackendClosed."""
        self._closing = True
        await self._group.close()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        await asyncio.gather(*self._idle_checks, return_exceptions=True)
        await self._on_thread(self._close_connection)
        self._executor.shutdown(wait=True)
        if self.projection_checkpointer is not None:
            await asyncio.to_thread(self.projection_checkpointer.close)
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.close)

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise BackendClosed("backend is closed")

    def _close_connection(self) -> None:
        self._memo.forget()
        if self.projection_checkpointer is not None:
            self.projection_checkpointer.hand_over_last(self.projection)
        self.projection.reset()
        self._tx = None
        if self._conn is not None:
            if self._memo.unfolded:
                self._fold_heads(self._conn)
            self._conn.close()
            self._conn = None

    def _fold_heads(self, conn: sqlite3.Connection) -> None:
        """Fold the chain heads into `chain_heads` (at close, so that a log closed
        cleanly has its heads exact at its end; at open, after writers that stopped
        before folding); a log that stays locked or cannot be written keeps them as they
        are (they are read from the events after them)."""

        def fold() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                fold_heads(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        try:
            retry_busy(fold, self._lock_wait)
            self._memo.unfolded = 0
        except sqlite3.Error as error:
            logger.warning("chain heads not folded at close: %s", error)


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
