"""The PostgreSQL backend: the log and its projection in one schema, shared by many
processes on many hosts.

Writes are batched per process (group commit): each batch fetches every row its units
declared (locking loads, claiming ready jobs and expired leases with SKIP LOCKED) in a
few statements, runs the unchanged units of work on an in-memory working set, then
flushes events and job rows in one statement each, every job update guarded by its
version. A batch that loses a race is rolled back and its units re-run alone on fresh
state, so conflicts never reach the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import asyncpg

from dogqueue.backend.base import EngineBackend, T
from dogqueue.backend.kit.batching import GroupCommit, storage_errors_from
from dogqueue.backend.kit.batchset import BatchReads, BatchWorkingSet
from dogqueue.backend.kit.pacing import Pacer
from dogqueue.backend.kit.rows import columns, from_micros, to_micros
from dogqueue.backend.kit.strictview import strictly
from dogqueue.backend.postgres import sequencer
from dogqueue.backend.postgres.browser import PostgresBrowser
from dogqueue.backend.postgres.claims import (
    claim_in_one_trip,
    claims,
    lease_only,
    writer_transaction,
)
from dogqueue.backend.postgres.connections import Session, session_of
from dogqueue.backend.postgres.errors import (
    _DRIVER_ERRORS,
    _RACES,
    _storage_errors,
)
from dogqueue.backend.postgres.lanes import beside, lane, remember_leases
from dogqueue.backend.postgres.log import PostgresLog, decode_job_at
from dogqueue.backend.postgres.migrate import channel, check_schema, migrate, quote
from dogqueue.backend.postgres.packing import packed
from dogqueue.backend.postgres.queries import Q
from dogqueue.backend.postgres.reads import Known, fetch_reads
from dogqueue.backend.postgres.sequencer import seal
from dogqueue.backend.postgres.workingset import (
    INSERT_COLUMNS,
    JOURNAL_COLUMNS,
    UPDATE_COLUMNS,
    job_rows,
)
from dogqueue.clock import Clock, utc_now
from dogqueue.core import validation as check
from dogqueue.core.codec import decode_event
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import prefix_end
from dogqueue.core.errors import BackendClosed, InvalidInput, QueueError, StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.projection import JobKey, rebuild
from dogqueue.engine import RefusedAfterWrite, Unit, run_units

#: Most units of work in one batch.
MAX_BATCH = 256
#: Times a lone unit is re-run after losing a race before the error is raised.
MAX_RETRIES = 50
#: How often the sequencer runs in the background (it also runs before log reads).
SEAL_INTERVAL = 0.1
#: How long a read waits for this object's own events to get positions.
SEAL_WAIT = 10.0
#: At most one NOTIFY of new work per this many seconds per process.
NOTIFY_INTERVAL = 0.01

#: The payload of a NOTIFY of new work a flush may send, if it may send one now.
Notify = Callable[[], str | None]


class PostgresBackend(EngineBackend):
    """A backend on a PostgreSQL schema, shared by processes on any number of hosts.

    `dsn` is an asyncpg connection string; `schema` isolates one queue. With no
    `clock`, leases and schedules use the database server's clock, so skewed host
    clocks cannot shorten or extend a lease. `listen=False` turns LISTEN/NOTIFY off
    (for transaction-pooling proxies): other hosts' work is then found by polling every
    `poll_interval` seconds."""

    def __init__(
        self,
        dsn: str,
        *,
        config: QueueConfig | None = None,
        clock: Clock | None = None,
        schema: str = "dogqueue",
        draw: Callable[[], float] | None = None,
        pool_size: int = 4,
        listen: bool = True,
        poll_interval: float = 1.0,
        audit_key: bytes | None = None,
    ) -> None:
        super().__init__(config=config, clock=clock or utc_now, draw=draw, audit_key=audit_key)
        if not isinstance(dsn, str) or not dsn:
            raise InvalidInput("dsn", "must be a PostgreSQL connection string")
        self.schema = check_schema(check.check_name("schema", schema))
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 2:
            raise InvalidInput("pool_size", "must be an int of at least 2")
        self.dsn = dsn
        self.listen = bool(listen)
        self.poll_interval = float(poll_interval)
        self._server_clock = clock is None
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._group: GroupCommit[Unit[Any]] = GroupCommit(
            self._run_batch,
            max_batch=MAX_BATCH,
            public=_public,
            splits=_worth_a_split,
            overlaps=lane,
            beside=beside,
        )
        self._sealer: asyncio.Task[None] | None = None
        self._seal_lock = asyncio.Lock()
        self._origin = uuid.uuid4().hex
        self._ready_channel = channel("ready", self.schema)
        self._cancel_channel = channel("cancel", self.schema)
        self._pace = Pacer(NOTIFY_INTERVAL, self._send_ready)
        #: The highest seq this object committed: reads wait until it has a position.
        self._last_seq = 0
        #: (database, schema oid) of this queue: an application's connection must match.
        self._identity: tuple[Any, ...] | None = None
        #: Jobs this process leased, as its batch wrote them, with their stored
        #: dependents: a settle seeds them unread (see `fetch_reads`).
        self._leased: dict[JobKey, Known] = {}
        #: Batches committed, units they held, and batches re-run after a race.
        self.commits = self.units = self.conflicts = 0

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (open backends only)."""
        if self._pool is None:
            raise StorageError("backend is not open")
        return self._pool

    # -- lifecycle ---------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            await migrate(self.dsn, self.schema)
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self._pool_size,
                server_settings={"search_path": quote(self.schema)},
            )
            if self.listen:
                self._listener = await asyncpg.connect(self.dsn)
                await self._listener.add_listener(self._ready_channel, self._on_ready)
                await self._listener.add_listener(self._cancel_channel, self._on_cancel)
        except (*_DRIVER_ERRORS, StorageError) as error:
            await self._close()
            raise StorageError(f"cannot open PostgreSQL queue {self.schema!r}: {error}") from error
        self._sealer = asyncio.get_running_loop().create_task(self._seal_forever())

    async def _close(self) -> None:
        await self._group.close()
        if self._sealer is not None:
            self._sealer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sealer
        if self._pool is not None:  # number what it wrote, unless a step is running
            with contextlib.suppress(QueueError, *_DRIVER_ERRORS):
                await self._seal_now(wait=False, catch_up=True)
        if self._pace.take_pending():  # send the NOTIFY it stood for before closing
            await self._notify(self._ready_channel, self._origin)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        if self._pool is not None:
            await self._pool.close()
        self._pool = self._listener = self._sealer = None

    # -- writes: group commit ----------------------------------------------------------

    def _submit(self, unit: Unit[T]) -> asyncio.Future[T]:
        if self._closed:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            future.set_exception(BackendClosed("backend is closed"))
            return future
        return self._group.submit(unit)

    async def _run_batch(self, units: list[Unit[Any]]) -> list[Any]:
        """Run a batch once; a lone unit that lost a race re-runs on fresh state (a
        batch that lost one raises, and the group commit splits it)."""
        attempts = 0
        while True:
            try:
                async with self.pool.acquire() as conn:
                    if any(claims(unit) for unit in units):
                        # Claimed rows stay locked until the flush commits.
                        async with writer_transaction(conn):
                            results, ws = await self._run_units(
                                conn, units, lock=True, notify=self._in_flush
                            )
                    else:  # reads, then one atomic guarded statement
                        results, ws = await self._run_units(
                            conn,
                            units,
                            lock=False,
                            notify=self._in_flush,
                            known=self._leased,
                            alone=True,
                        )
                self.commits += 1
                self.units += len(units)
                self._after_commit(ws)
                return results
            except _RACES as error:
                self.conflicts += 1
                self._leased.clear()  # one may be stale: the re-run reads every load
                if len(units) > 1:
                    raise
                attempts += 1
                if attempts > MAX_RETRIES:
                    return [StorageError(f"gave up after {attempts} conflicts: {error}")]
                await asyncio.sleep(0.001 * attempts)

    async def _run_units(
        self,
        conn: Session,
        units: list[Unit[Any]],
        *,
        lock: bool,
        notify: Notify,
        known: Mapping[JobKey, Known] | None = None,
        alone: bool = False,
    ) -> tuple[list[Any], BatchWorkingSet]:
        """Fetch the batch's reads (loads locked if `lock`; those in `known` unread, see
        `fetch_reads`), run its units on a working set, flush the writes in one
        statement; the caller owns any transaction. If the batch makes a job ready and
        `notify` gives a payload, the flush also sends the NOTIFY of new work, delivered
        when the transaction commits. `alone`: `conn` is in no transaction (each
        statement commits on its own)."""
        declared = BatchReads()
        for unit in units:
            declared.add(unit.reads)
        lease = lease_only(declared)
        if lease is not None:
            clock_us = None if self._server_clock else to_micros(self.now())
            now, ws, ending = await claim_in_one_trip(conn, *lease, clock_us)
        else:
            clock = None if self._server_clock else self.now
            now, ws, ending = await fetch_reads(
                conn, declared, lock=lock, clock=clock, known=known, alone=alone
            )
        roots = ws.closure_roots(ending)
        if roots:  # only batches ending jobs that others wait for pay this read
            rows = await conn.fetch(
                Q["dependents_closure"], [k[0] for k in roots], [k[1] for k in roots]
            )
            rows.sort(key=lambda row: (row[0], row[1], row[5]))  # each parent's oldest first
            ws.seed_closure(roots, [tuple(row)[:5] for row in rows])
        results = run_units(ws, [strictly(unit) for unit in units], now)
        await self._flush(conn, ws, notify)
        return results, ws

    async def _flush(self, conn: Session, ws: BatchWorkingSet, notify: Notify) -> None:
        if not ws.journal:
            return
        payload = notify() if ws.became_ready() else None
        inserts, updates = job_rows(ws)
        last_seq = await conn.fetchval(
            Q["flush"],
            *packed(columns(ws.journal, len(JOURNAL_COLUMNS)), JOURNAL_COLUMNS),
            *packed(inserts, INSERT_COLUMNS),
            *packed(updates, UPDATE_COLUMNS),
            len(updates[0]),
            *columns(ws.new_edges, 4),
            None if payload is None else self._ready_channel,
            payload,
        )
        ws.last_seq = int(last_seq)
        ws.notified = payload is not None

    def _in_flush(self) -> str | None:
        """The payload of a NOTIFY of new work sent with this batch's commit, if the
        pace allows one now (else one is sent at the end of the interval)."""
        return self._origin if self.listen and self._pace.may_send_now() else None

    def _after_commit(self, ws: BatchWorkingSet) -> None:
        self._last_seq = max(self._last_seq, ws.last_seq)
        remember_leases(self._leased, ws)
        if ws.became_ready():
            self._notify_change()  # local waiters, at once
            if self.listen and not ws.notified:
                self._pace.later()

    # -- transactional enqueue ---------------------------------------------------------

    @_storage_errors
    async def enqueue_in_transaction(
        self,
        connection: object,
        ctx: QueueCtx,
        message: JobMessage,
        *,
        trace_context: dict[str, str] | None = None,
    ) -> str:
        """Enqueue inside the application's own open transaction on this database (an
        asyncpg, psycopg 3 or SQLAlchemy async connection): the job exists if and only
        if that transaction commits, and workers are woken at its commit. A race with
        another writer raises StorageError (the caller's transaction is then aborted and
        may be retried whole)."""
        prepared = check.prepare_enqueue(ctx, (message,), self.config, trace_context=trace_context)
        ids = await self.run_unit_in(connection, self._engine.enqueue_unit(prepared))
        return ids[0]

    @_storage_errors
    async def run_unit_in(self, connection: object, unit: Unit[T]) -> T:
        """Run a unit of work (see `run_unit`) inside the application's own open
        transaction on this database (see `enqueue_in_transaction`): what it writes
        commits if and only if that transaction does. The connection's search_path is
        as it was afterwards."""
        session = await session_of(connection)
        await self._ready()
        if self._identity is None:
            async with self.pool.acquire() as conn:
                self._identity = tuple(await conn.fetchrow(Q["identity"], self.schema))
        path, *identity = await session.fetchrow(Q["path_and_identity"], self.schema)
        if tuple(identity) != self._identity:
            raise InvalidInput(
                "connection", f"is not on the database of queue {self.schema!r} ({identity[0]})"
            )
        try:
            had_xid = await session.fetchval(Q["enter_schema"], quote(self.schema))
            await session.execute(Q["join_writers"])
            if had_xid is not None:  # a step may have passed its xid already
                await session.execute(Q["register_late_writer"])
            # Any NOTIFY is delivered at the application's commit, to this process too.
            results, _ = await self._run_units(
                session, [unit], lock=claims(unit), notify=_to_every_process
            )
        except BaseException as error:
            with contextlib.suppress(Exception):  # an aborted transaction refuses this
                await session.execute(Q["leave_schema"], path)
            if isinstance(error, _RACES):
                raise StorageError(f"a unit of work lost a race: {error}") from error
            raise
        await session.execute(Q["leave_schema"], path)
        if isinstance(results[0], BaseException):
            raise results[0]
        result: T = results[0]
        return result

    # -- cross-host wake-ups and cancels ------------------------------------------------

    def _send_ready(self) -> None:
        self._spawn(self._notify(self._ready_channel, self._origin))

    def _announce_cancel(self, tenant_id: str, job_id: str) -> None:
        super()._announce_cancel(tenant_id, job_id)
        if self.listen:
            self._spawn(
                self._notify(self._cancel_channel, f"{self._origin}\t{tenant_id}\t{job_id}")
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._orphan_releases.add(task)
        task.add_done_callback(self._orphan_releases.discard)

    async def _notify(self, channel: str, payload: str) -> None:
        with contextlib.suppress(Exception):
            async with self.pool.acquire() as conn:
                await conn.execute(Q["notify"], channel, payload)

    def _on_ready(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if payload != self._origin:
            self._notify_change()

    def _on_cancel(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        origin, _, rest = payload.partition("\t")
        tenant_id, _, job_id = rest.partition("\t")
        if origin != self._origin and job_id:
            super()._announce_cancel(tenant_id, job_id)

    async def wait_for_change(self, max_wait: float) -> None:
        """Return soon after a job may have become leasable here or on another host
        (NOTIFY), or after at most `poll_interval` seconds, or `max_wait`."""
        await self._ready()
        await super().wait_for_change(min(max_wait, self.poll_interval))

    # -- positions ---------------------------------------------------------------------

    @_storage_errors
    async def seal(self) -> int:
        """Number every committed event (every session's, not only this object's),
        waiting for a step another session is running (never for transactions:
        numbering waits for no one); return how many were numbered."""
        await self._ready()
        return await self._seal_now()

    async def _seal_now(self, *, wait: bool = True, catch_up: bool = False) -> int:
        """Sequencer steps until this object's own events have positions; not
        `wait`ing, one step (more while steps are full if `catch_up`), none if another
        session's step is running."""
        total = 0
        mine = self._last_seq if wait else 0
        deadline = asyncio.get_running_loop().time() + SEAL_WAIT
        async with self._seal_lock, self.pool.acquire() as conn:
            while True:
                count = await seal(conn, self.audit_key, wait=wait)
                total += count
                if (wait or catch_up) and count >= sequencer.STEP_LIMIT:
                    continue  # a full step: other sessions' committed events wait
                if not mine or await conn.fetchval(Q["is_sealed"], mine):
                    return total
                if count:
                    continue
                if asyncio.get_running_loop().time() > deadline:
                    return total  # a stuck step holds the head: read a prefix
                await asyncio.sleep(0.002)

    async def _seal_forever(self) -> None:
        while True:
            await asyncio.sleep(SEAL_INTERVAL)
            with contextlib.suppress(Exception):  # full steps go on: writers may outrun one
                await self._seal_now(wait=False, catch_up=True)

    def log_reader(self, *, wait_for_own_writes: bool = True) -> PostgresLog:
        """The stored log, read-only (positions, hashes, the projection). While this
        backend is open, reads first number every committed event, so they see its
        writes (waiting only for another session's step, up to SEAL_WAIT); without
        `wait_for_own_writes`, one step unless another session is running one."""
        if self._pool is None or self._closed:  # read the stored log on its own
            return PostgresLog(dsn=self.dsn, schema=self.schema)
        if not wait_for_own_writes:
            return PostgresLog(self._pool, before_read=self._seal_step)
        return PostgresLog(self._pool, before_read=self.seal)

    def browser(self) -> PostgresBrowser:
        """The dashboard's reads on the queue's tables, through this backend's pool
        (so it is open while the backend is)."""
        return PostgresBrowser(lambda: self.pool)

    @_storage_errors
    async def _seal_step(self) -> int:
        """One sequencer step, none if another session is running one: never waits
        for anything but this process's own steps."""
        await self._ready()
        return await self._seal_now(wait=False)

    # -- reads -------------------------------------------------------------------------

    @_storage_errors
    async def _read_job(self, tenant_id: str, job_id: str) -> JobInfo | None:
        # One step, no waiting: a job's state is current without it; only its enqueue
        # position (the tenant's) needs the enqueued event to be numbered.
        await self._seal_now(wait=False)
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(Q["load_job"], tenant_id, job_id)
        return None if row is None else decode_job_at(row[0], row[1])

    @_storage_errors
    async def _latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(Q["latest_keys"], [tenant_id], [prefix], [prefix_end(prefix)])
        return None if row is None else (str(row[1]), str(row[2]))

    @_storage_errors
    async def _read_history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        await self.seal()
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q["history"], tenant_id, job_id)
        return [decode_event(bytes(data), int(tpos)) for tpos, data in rows]

    @_storage_errors
    async def _announce_worker(
        self, worker_id: str, last_seen: datetime, data: bytes, forget_before: datetime
    ) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(Q["announce_worker"], worker_id, to_micros(last_seen), data)
            await conn.execute(Q["forget_workers"], to_micros(forget_before))

    @_storage_errors
    async def _read_workers(self, seen_since: datetime) -> list[bytes]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q["workers_seen_since"], to_micros(seen_since))
        return [bytes(row[0]) for row in rows]

    @_storage_errors
    async def _ready_tenants(self, queues: tuple[str, ...], now: datetime) -> list[str]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q["ready_tenants"], list(queues), to_micros(now))
        return [str(row[0]) for row in rows]

    @_storage_errors
    async def _next_run_at(
        self, queues: tuple[str, ...], tenant_ids: tuple[str, ...] | None
    ) -> datetime | None:
        async with self.pool.acquire() as conn:
            if tenant_ids is None:
                value = await conn.fetchval(Q["next_run_at"], list(queues))
            else:
                value = await conn.fetchval(
                    Q["next_run_at_of_tenants"], list(queues), list(tenant_ids)
                )
        return None if value is None else from_micros(int(value))

    @_storage_errors
    async def _read_events(self, after_seq: int, limit: int | None) -> list[AnyEvent]:
        return await self.log_reader().events(after=after_seq, limit=limit)

    @_storage_errors
    async def _projected_jobs(self) -> dict[JobKey, JobInfo]:
        await self.seal()
        jobs = await self.log_reader().jobs()
        return {(job.tenant_id, job.job_id): job for job in jobs}

    @_storage_errors
    async def _rebuild_projections(self) -> int:
        """Replace the projection with the fold of the log, in one transaction that
        holds every writer back."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE jobs IN EXCLUSIVE MODE")
            rows = await conn.fetch(Q["all_events_by_job"])
            jobs = rebuild(decode_event(bytes(data), int(seq)) for seq, data in rows)
            await conn.execute(Q["delete_jobs"])
            await conn.execute(Q["delete_edges"])
            ws = BatchWorkingSet([])
            for job in sorted(jobs.values(), key=lambda j: j.enqueue_seq):
                ws.jobs[(job.tenant_id, job.job_id)] = job
                ws.before[(job.tenant_id, job.job_id)] = None
                ws._adopt(job)
            inserts, _ = job_rows(ws)
            if inserts[0]:
                await conn.execute(Q["insert_jobs"], *inserts)
            if ws.new_edges:
                await conn.execute(Q["insert_edges"], *columns(ws.new_edges, 4))
        return len(rows)


def _to_every_process() -> str:
    """The payload of a NOTIFY that this process's own listener does not ignore."""
    return ""


def _worth_a_split(error: BaseException) -> bool:
    """Whether running each unit alone may help: after a race, a refusal after a write,
    or a driver error (one unit's bad row fails only that unit)."""
    return isinstance(error, (*_RACES, RefusedAfterWrite, *_DRIVER_ERRORS))


_public = storage_errors_from("PostgreSQL", _DRIVER_ERRORS)


def default_dsn() -> str:
    """The DSN of the local test server unless DOGQUEUE_PG_DSN says otherwise."""
    return os.environ.get("DOGQUEUE_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
