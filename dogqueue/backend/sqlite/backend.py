"""The SQLite backend: the log, and a checkpoint of its projection, in one database file.

Writes go through one writer thread with group commit (many callers, one transaction);
events are their only rows. The projection lives in the writer's memory
(`projection.LogProjection`), caught up from the log under the write lock, and is
checkpointed into the job tables in the background (`catchup`). Reads of the log go
through an aiosqlite connection and see only committed data. Several processes may share
one file: every write transaction starts with BEGIN IMMEDIATE, so catching up, deciding
and appending happen under SQLite's write lock, and a busy database is waited for.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import aiosqlite

from dogqueue.backend.base import EngineBackend, T
from dogqueue.backend.kit.rows import job_row, to_micros
from dogqueue.backend.kit.strictview import reads_checked, strictly
from dogqueue.backend.sqlite.browser import SqliteBrowser
from dogqueue.backend.sqlite.catchup import ProjectionCheckpointer
from dogqueue.backend.sqlite.checkpointer import WalCheckpointer
from dogqueue.backend.sqlite.connection import (
    BUSY_GIVE_UP_SECONDS,
    Synchronous,
    connect,
    migrate,
    retry_busy,
    translate,
)
from dogqueue.backend.sqlite.external import enqueue_messages_in
from dogqueue.backend.sqlite.log import SqliteLogReader
from dogqueue.backend.sqlite.projection import LogProjection
from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import (
    edge_rows,
    recount_jobs,
)
from dogqueue.backend.sqlite.writer import GroupCommitWriter, UnitOfWork
from dogqueue.clock import Clock
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import prefix_end
from dogqueue.core.errors import BackendClosed, InvalidInput, QueueError, StorageError
from dogqueue.core.events import AnyEvent, is_control
from dogqueue.core.job import JobInfo
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.projection import JobKey, fold, rebuild
from dogqueue.core.validation import check_duration
from dogqueue.core.validation import prepare_enqueue as check_enqueue
from dogqueue.engine import Reads, Unit
from dogqueue.log.stored import stored_event, stored_job

#: How long a write waits for another connection's write lock unless told otherwise.
DEFAULT_LOCK_WAIT = timedelta(seconds=BUSY_GIVE_UP_SECONDS)
#: Events read per query when streaming the whole log.
_PAGE = 10_000
#: Most jobs a unit may read, create or lease and still commit on the event loop when
#: it is alone (`GroupCommitWriter.submit(small=True)`): what bounds the loop's hold.
LONE_UNIT_JOBS = 8
#: How often an idle waiter asks SQLite whether another connection committed.
CHANGE_POLL_SECONDS = 0.02


class SqliteBackend(EngineBackend):
    """A backend on a SQLite database file (created if missing).

    `synchronous="NORMAL"` (the default): every returned call survives a crash of the
    process; a power loss or OS crash may lose the last commits. `synchronous="FULL"`:
    every returned call also survives a power loss, at the cost of an fsync per commit.

    `lock_wait` (default 60 s): how long a write waits while another connection holds
    the database's write lock. Past it the call raises StorageError ("database stayed
    locked"), having written nothing, and may be retried; None waits for ever.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        config: QueueConfig | None = None,
        clock: Clock | None = None,
        synchronous: Synchronous = "NORMAL",
        draw: Callable[[], float] | None = None,
        lock_wait: timedelta | None = DEFAULT_LOCK_WAIT,
        audit_key: bytes | None = None,
    ) -> None:
        super().__init__(config=config, clock=clock, draw=draw, audit_key=audit_key)
        if synchronous not in ("NORMAL", "FULL"):
            raise InvalidInput("synchronous", 'must be "NORMAL" or "FULL"')
        if lock_wait is not None:
            check_duration("lock_wait", lock_wait)
        self.lock_wait = lock_wait
        self.path = os.fspath(path)
        self.synchronous: Synchronous = synchronous
        self._writer: GroupCommitWriter | None = None
        self._reader: aiosqlite.Connection | None = None
        self._browser: SqliteBrowser | None = None
        #: `PRAGMA data_version` as `wait_for_change` last saw it.
        self._seen_version = 0
        #: Whether units run through the strict view (`dogqueue.backend.kit.strictview`).
        self._check_reads = reads_checked()

    @property
    def writer(self) -> GroupCommitWriter:
        """The group-commit writer (open backends only)."""
        if self._writer is None:
            raise self._not_open()
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise self._not_open()
        return self._reader

    def _not_open(self) -> QueueError:
        if self._closed:
            return BackendClosed("backend is closed")
        return StorageError("backend is not open")

    async def _open(self) -> None:
        wait = None if self.lock_wait is None else self.lock_wait.total_seconds()
        writer = GroupCommitWriter(
            lambda: connect(self.path, self.synchronous, lock_wait=wait),
            self.now,
            wait,
            self.audit_key,
            checkpointer=WalCheckpointer(
                lambda: connect(self.path, self.synchronous, read_only=True, lock_wait=wait)
            ),
            # The checkpoint is derived: a power loss that takes its last commit leaves an
            # older checkpoint and a longer tail to fold, never a wrong state (a WAL keeps
            # frames in order, and every FULL commit of events syncs the frames before it).
            # So its commits skip the fsync that FULL would add while holding the write lock.
            projection_checkpointer=ProjectionCheckpointer(
                lambda: connect(self.path, "NORMAL", lock_wait=wait),
                wait,
                clock=lambda: self.now().timestamp(),
            ),
            lone_units_inline=self.synchronous == "NORMAL",
        )
        try:
            await writer.call(lambda conn: migrate(conn, wait, self.audit_key))
            await writer.load_projection()
        except sqlite3.Error as error:
            await writer.close()
            raise translate(error) from error
        except BaseException:
            await writer.close()
            raise
        try:
            pending = aiosqlite.connect(self.path, isolation_level=None)
            _daemonize(pending)
            reader = await pending
            await reader.execute("PRAGMA busy_timeout = 5000")
            await reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as error:
            await writer.close()
            raise translate(error) from error
        self._writer, self._reader = writer, reader
        self._seen_version = await writer.data_version()

    async def _close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        if self._reader is not None:
            await self._reader.close()
        self._writer = self._reader = None
        if self._browser is not None:
            self._browser.close()

    def holding(self) -> str:
        """What the writer holds now (for a report on a close or a call that does not
        end)."""
        return "closed" if self._writer is None else self._writer.holding()

    def _submit(self, unit: Unit[T]) -> asyncio.Future[T]:
        work, small = self._work(unit)
        return self.writer.submit(work, small=small)

    def _work(self, unit: Unit[Any]) -> tuple[UnitOfWork, bool]:
        """What the writer runs for `unit` (read-checked in tests), and whether it is small."""
        work = strictly(unit) if self._check_reads else unit.run
        return work, _is_small(unit.reads)

    async def enqueue(
        self, ctx: QueueCtx, message: JobMessage, *, trace_context: dict[str, str] | None = None
    ) -> str:
        """Append the job; return its new id. A lone caller's job commits within the
        call (`GroupCommitWriter.commit_now`): no future, no batch to deliver from."""
        prepared = check_enqueue(ctx, (message,), self.config, trace_context=trace_context)
        await self._ready()
        work, small = self._work(self._engine.enqueue_unit(prepared))
        writer = self.writer
        results = writer.commit_now(work) if small else None
        if results is None:
            ids: list[str] = await writer.submit(work, small=small)
        else:
            ids = results[0]
            if isinstance(ids, BaseException):
                raise ids
        self._notify_change()
        return ids[0]

    async def wait_for_change(self, max_wait: float) -> None:
        """Return when a job may have become leasable, or after `max_wait` seconds.

        Commits made through this object wake the waiter at once; commits by other
        connections are seen by polling the write connection's `PRAGMA data_version`
        (which only their commits change), a cheap read, against the version this
        object last saw: a commit made while the first poll was on its way returns at
        once, rather than being taken for the starting point."""
        if max_wait <= 0:
            return
        await self._ready()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        waiter: asyncio.Future[None] = loop.create_future()
        self._change_waiters.add(waiter)
        try:
            while not waiter.done():
                version = await self.writer.data_version()
                if version != self._seen_version:
                    self._seen_version = version
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                await asyncio.wait({waiter}, timeout=min(remaining, CHANGE_POLL_SECONDS))
        finally:
            self._change_waiters.discard(waiter)

    async def _fetchall(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        # Shielded: a read cancelled halfway would leave its statement open, and the
        # reader would keep seeing that old snapshot of the database.
        read = asyncio.ensure_future(self._fetchall_unshielded(query, params))
        read.add_done_callback(_consume_error)
        return await asyncio.shield(read)

    async def _fetchall_unshielded(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            # One call on the reader's thread runs the statement to its end: were execute
            # and fetch two calls, another read queued between them would run inside this
            # statement's read transaction and see its older snapshot (a job just
            # committed would not be found).
            return list(await self.reader.execute_fetchall(query, params))
        except (sqlite3.Error, ValueError) as error:
            if self._closed:  # the reader was closed under this read
                raise BackendClosed("backend is closed") from error
            if isinstance(error, sqlite3.Error):
                raise translate(error) from error
            raise

    async def _read_job(self, tenant_id: str, job_id: str) -> JobInfo | None:
        # The fold of the job's events (at their tenant positions): exact whatever
        # other processes appended, without the writer's projection.
        history = await self._read_history(tenant_id, job_id)
        return fold(history) if history and not is_control(history[0]) else None

    async def _latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        rows = await self._fetchall(Q["latest_key_in_log"], (tenant_id, prefix, prefix_end(prefix)))
        return None if not rows else (str(rows[0][0]), str(rows[0][1]))

    async def _read_history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        rows = await self._fetchall(Q["history"], (tenant_id, job_id))
        return [stored_event(data, seq) for seq, data in rows]

    async def _ready_tenants(self, queues: tuple[str, ...], now: datetime) -> list[str]:
        def ready(projection: LogProjection) -> list[str]:
            tenants = sorted(projection.enqueued_tenants())
            return [t for t in tenants if projection.next_ready(t, queues, now) is not None]

        return list(await self.writer.read(ready))

    async def _next_run_at(
        self, queues: tuple[str, ...], tenant_ids: tuple[str, ...] | None
    ) -> datetime | None:
        found = await self.writer.read(lambda p: p.next_run_at(queues, tenant_ids))
        return None if found is None else cast(datetime, found)

    async def _read_events(self, after_seq: int, limit: int | None) -> list[AnyEvent]:
        rows = await self._fetchall(Q["read_events"], (after_seq, -1 if limit is None else limit))
        return [stored_event(data, seq) for seq, data in rows]

    async def flush_checkpoint(self) -> None:
        """Bring the checkpoint tables to the end of the log now (they are otherwise
        written every few thousand events or seconds, and at close)."""
        checkpointer = self.writer.projection_checkpointer
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.flush)

    async def _projected_jobs(self) -> dict[JobKey, JobInfo]:
        await self.flush_checkpoint()  # the checkpoint, compared with the fold
        rows = await self._fetchall(Q["all_jobs"], ())
        jobs = (stored_job(row[0], "a job") for row in rows)
        return {(job.tenant_id, job.job_id): job for job in jobs}

    async def _rebuild_projections(self) -> int:
        wait = None if self.lock_wait is None else self.lock_wait.total_seconds()

        def rebuild_waiting(conn: sqlite3.Connection) -> int:
            try:
                return retry_busy(lambda: _rebuild(conn), wait)
            except sqlite3.Error as error:
                raise translate(error, wait) from error

        return int(await self.writer.call(rebuild_waiting, rewrites_log=True))

    async def _announce_worker(
        self, worker_id: str, last_seen: datetime, data: bytes, forget_before: datetime
    ) -> None:
        wait = None if self.lock_wait is None else self.lock_wait.total_seconds()

        def announce(conn: sqlite3.Connection) -> None:
            try:
                retry_busy(
                    lambda: conn.execute(
                        Q["announce_worker"], (worker_id, to_micros(last_seen), data)
                    ),
                    wait,
                )
                retry_busy(
                    lambda: conn.execute(Q["forget_workers"], (to_micros(forget_before),)), wait
                )
            except sqlite3.Error as error:
                raise translate(error, wait) from error

        await self.writer.call(announce)

    async def _read_workers(self, seen_since: datetime) -> list[bytes]:
        rows = await self._fetchall(Q["workers_seen_since"], (to_micros(seen_since),))
        return [bytes(row[0]) for row in rows]

    async def enqueue_in_transaction(
        self,
        connection: object,
        ctx: QueueCtx,
        message: JobMessage,
        *,
        trace_context: dict[str, str] | None = None,
    ) -> str:
        """Enqueue inside the application's own `sqlite3` transaction on this database
        file: the job exists if and only if that transaction commits."""
        await self._ready()
        (job_id,) = enqueue_messages_in(
            connection,
            ctx,
            [message],
            engine=self.engine,
            config=self.config,
            now=self.now(),
            audit_key=self.audit_key,
            path=self.path,
            trace_context=trace_context,
        )
        return job_id

    def log_reader(self, *, wait_for_own_writes: bool = True) -> SqliteLogReader:
        """The database file's log, read through its own read-only connection (events
        have their positions at the commit: a read never waits)."""
        return SqliteLogReader(self.path)

    def browser(self) -> SqliteBrowser:
        """The dashboard's reads on the database file: indexed SQL on one read-only
        connection of its own, closed with the backend."""
        if self._browser is None:
            self._browser = SqliteBrowser(self.path, before_read=self._flush_if_open)
        return self._browser

    async def _flush_if_open(self) -> None:
        if self._writer is not None:
            await self.flush_checkpoint()


def _is_small(reads: Reads) -> bool:
    """Whether a unit touches few enough jobs to commit on the event loop when alone.
    A dequeue's reclaim of its tenant's expired leases counts as small (it is an empty
    index range but after a mass expiry); a reclaim across every tenant never does."""
    if None in reads.expired:
        return False
    jobs = len(reads.jobs) + reads.new_jobs
    for _, _, leases in reads.ready:
        jobs += leases
    return jobs <= LONE_UNIT_JOBS


def _consume_error(read: asyncio.Future[Any]) -> None:
    """Mark the error of a read whose caller was cancelled as seen (it has no one to
    raise to: e.g. the backend was closed meanwhile)."""
    if not read.cancelled():
        read.exception()


def _daemonize(connection: aiosqlite.Connection) -> None:
    """Let the interpreter exit even if a backend was never closed: aiosqlite's reader
    thread is not a daemon, and a read-only connection loses nothing when stopped."""
    thread = getattr(connection, "_thread", connection)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


def _rebuild(conn: sqlite3.Connection) -> int:
    """Replace every job row with the fold of the log, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:

        def events() -> Any:
            after = 0
            while True:
                rows = conn.execute(Q["read_events"], (after, _PAGE)).fetchall()
                if not rows:
                    return
                for seq, data in rows:
                    yield stored_event(data, seq)
                after = rows[-1][0]

        count = 0

        def counted() -> Any:
            nonlocal count
            for event in events():
                count += 1
                yield event

        jobs = rebuild(counted())
        ordered = sorted(jobs.values(), key=lambda j: j.enqueue_seq)
        conn.execute(Q["delete_jobs"])
        conn.execute(Q["delete_edges"])
        conn.executemany(Q["insert_job"], (job_row(job) for job in ordered))
        conn.executemany(Q["insert_edge"], (edge for job in ordered for edge in edge_rows(job)))
        recount_jobs(conn)
        end = conn.execute(Q["next_seq"]).fetchone()[0] - 1
        conn.execute(Q["set_checkpoint_position"], (end,))
        conn.execute("COMMIT")
        return count
    except BaseException:
        conn.execute("ROLLBACK")
        raise
