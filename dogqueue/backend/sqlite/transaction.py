"""The engine's Transaction on a sqlite3 connection, run in the writer thread."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import msgspec

from dogqueue.backend.sqlite.chain import fold_heads, stored_heads
from dogqueue.backend.sqlite.projection import LogProjection, job_from_log
from dogqueue.backend.sqlite.queries import Q
from dogqueue.core.codec import encode_event
from dogqueue.core.cron import prefix_end
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent, Enqueued
from dogqueue.core.job import JobInfo

_replace_seq = msgspec.structs.replace
#: Events a writer appends between two folds of the chain heads into `chain_heads`: a
#: head it does not hold is read by scanning the log backwards down to the folded
#: position, so this bounds that scan (and how many events a stored head lags).
FOLD_EVERY = 1_000


class LogEndMemo:
    """What one writer connection knows of the end of the log between its transactions:
    the next position and the chain heads its last commit left, extended with the events
    other connections appended when `PRAGMA data_version` shows they committed; any
    doubt (a rollback, a write outside a transaction) forgets it. Also the events it
    appended since it last folded the heads into `chain_heads`, and how many it appends
    between two folds."""

    #: Most chain heads remembered; past it they are forgotten and read again.
    MAX_HEADS = 10_000

    def __init__(self) -> None:
        self.data_version: int | None = None
        self.next_seq = 0
        self.heads: dict[str, tuple[int, bytes, int]] = {}
        self.unfolded = 0
        self.fold_every = FOLD_EVERY

    def forget(self) -> None:
        """Trust nothing remembered: the next transaction reads the end of the log."""
        self.data_version = None
        self.heads = {}


class SqliteTransaction:
    """One write transaction on the log. Events are buffered and written with one
    `executemany` at the commit: they are its only rows. Jobs are read from the
    process's projection in memory (`projection`), caught up at `begin` with what other
    connections appended; without one (an application's own transaction), and for jobs
    that left memory, a job is the fold of its events in the log. Idempotency keys are
    looked up in the log's unique index on them, and in this transaction's buffer."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        audit_key: bytes | None = None,
        memo: LogEndMemo | None = None,
        projection: LogProjection | None = None,
    ) -> None:
        self.conn = conn
        #: What runs the statements of every commit (BEGIN, the log's end, the events,
        #: COMMIT): one cursor for all of them, not a new one per statement; an
        #: application's joined connection (which turns them into a savepoint) itself.
        self._run: sqlite3.Connection | sqlite3.Cursor = (
            conn.cursor() if isinstance(conn, sqlite3.Connection) else conn
        )
        self._memo = memo
        self._projection = projection
        self._data_version: int | None = None
        self.next_seq = 0
        self.writes = 0
        self._events: list[tuple[int, str, str, int, str, bytes, bytes, int, str | None]] = []
        self._chain = stored_heads(conn, audit_key)
        #: Keys this transaction gave out, and jobs it saved (without a projection).
        self._keys: dict[tuple[str, str], str] = {}
        self._saved: dict[tuple[str, str], JobInfo] = {}
        #: Jobs that left memory, as read from the log in this transaction.
        self._from_log: dict[tuple[str, str], JobInfo | None] = {}

    def begin(self) -> None:
        projection = self._projection
        if projection is not None and self._memo is not None:
            # Fold other writers' events before taking the lock: it is held for less.
            projection.fold_ahead(self.conn, self._memo.data_version)
        try:
            self._run.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            if projection is not None:
                projection.others_write = True  # another holds the lock: fold while waiting
            raise
        self.writes = 0  # the buffers are empty: `commit` and `rollback` clear them
        memo = self._memo
        if memo is None:
            self.next_seq = self.conn.execute(Q["next_seq"]).fetchone()[0]
            self._chain.restart()
        else:
            self._data_version = self._run.execute(Q["data_version"]).fetchone()[0]
            if memo.data_version != self._data_version:
                if memo.data_version is not None:  # another connection committed
                    self._heads_appended_since(memo)
                memo.next_seq = self.conn.execute(Q["next_seq"]).fetchone()[0]
            self.next_seq = memo.next_seq
            self._chain.restart(memo.heads)
        if projection is not None:
            if not projection.loaded:
                projection.load_checkpoint(self.conn)
            if projection.position < self.next_seq - 1:
                projection.catch_up(self.conn)
            projection.begin()

    def _heads_appended_since(self, memo: LogEndMemo) -> None:
        """Move the heads `memo` holds to the events appended after its end."""
        heads = memo.heads
        rows = self.conn.execute(Q["events_heads_after"], (memo.next_seq - 1,))
        for tenant_id, seq, digest, tpos in rows:
            if tenant_id in heads:
                heads[tenant_id] = (seq, bytes(digest), tpos)

    def commit(self) -> None:
        if self._events:
            self._run.executemany(Q["insert_event"], self._events)
            memo = self._memo
            if memo is None:  # an application's transaction: fold once far enough behind
                if self.conn.execute(Q["unfolded_events"]).fetchone()[0] > FOLD_EVERY:
                    fold_heads(self.conn)
            else:
                memo.unfolded += len(self._events)
                if memo.unfolded >= memo.fold_every:
                    fold_heads(self.conn)
                    memo.unfolded = 0
            self._events.clear()
        self._run.execute("COMMIT")
        memo = self._memo
        if memo is not None:
            memo.data_version = self._data_version
            memo.next_seq = self.next_seq
            if len(memo.heads) > memo.MAX_HEADS:
                memo.heads = {}
        projection = self._projection
        if projection is not None:
            projection.position = max(projection.position, self.next_seq - 1)
            projection.commit()
        self._forget_buffers()

    def rollback(self) -> None:
        self._events.clear()
        self._forget_buffers()
        if self._projection is not None:
            self._projection.rollback()
        if self._memo is not None:
            self._memo.forget()
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _forget_buffers(self) -> None:
        self._keys.clear()
        self._saved.clear()
        self._from_log.clear()

    def _needs_projection(self, what: str) -> LogProjection:
        if self._projection is None:
            raise StorageError(f"{what} needs the backend's projection (not in an app transaction)")
        return self._projection

    # -- Transaction -------------------------------------------------------------------

    def load(self, tenant_id: str, job_id: str) -> JobInfo | None:
        key = (tenant_id, job_id)
        if self._projection is not None:
            job = self._projection.load(tenant_id, job_id)
            if job is not None:
                return job
        saved = self._saved.get(key)
        if saved is not None:
            return saved
        if key not in self._from_log:
            self._from_log[key] = job_from_log(self.conn, tenant_id, job_id)
        return self._from_log[key]

    def job_for_key(self, tenant_id: str, idempotency_key: str) -> str | None:
        mine = self._keys.get((tenant_id, idempotency_key))
        if mine is not None:
            return mine
        row = self.conn.execute(Q["job_for_key_in_log"], (tenant_id, idempotency_key)).fetchone()
        return None if row is None else str(row[0])

    def latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        end = prefix_end(prefix)
        row = self.conn.execute(Q["latest_key_in_log"], (tenant_id, prefix, end)).fetchone()
        found = None if row is None else (str(row[0]), str(row[1]))
        for (tenant, key), job_id in self._keys.items():
            if tenant == tenant_id and prefix <= key < end and (found is None or key > found[0]):
                found = (key, job_id)
        return found

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        return self._needs_projection("a dequeue").next_ready(tenant_id, queues, now)

    def dependents(self, tenant_id: str, job_id: str) -> list[str]:
        return self._needs_projection("a dependents read").dependents(tenant_id, job_id)

    def expired_leases(self, tenant_id: str | None, now: datetime) -> list[JobInfo]:
        return self._needs_projection("a reclaim").expired_leases(tenant_id, now)

    def append(self, event: AnyEvent) -> AnyEvent:
        seq = self.next_seq
        self.next_seq += 1
        self.writes += 1
        data = encode_event(event)
        digest, tpos = self._chain.link(event.tenant_id, seq, data)
        key = event.message.idempotency_key if isinstance(event, Enqueued) else None
        if key is not None:
            self._keys[(event.tenant_id, key)] = event.job_id
        self._events.append(
            (seq, event.tenant_id, event.job_id, event.version, event.type, data, digest, tpos, key)
        )
        return _replace_seq(event, seq=seq)

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        if self._projection is not None:
            self._projection.save(before, after)
        else:
            self._saved[(after.tenant_id, after.job_id)] = after
        if self._from_log:
            self._from_log.pop((after.tenant_id, after.job_id), None)


def recount_jobs(conn: sqlite3.Connection) -> None:
    """Count the job rows again into `job_counts`, after a rewrite of many rows."""
    conn.execute(Q["delete_job_counts"])
    conn.execute(Q["count_jobs"])


def edge_rows(job: JobInfo) -> list[tuple[str, str, int, str]]:
    """The parameters of `insert_edge` for each parent of a job."""
    return [(job.tenant_id, parent, job.enqueue_seq, job.job_id) for parent in job.message.after]


def json_list(values: tuple[str, ...] | tuple[int, ...]) -> str:
    """A list parameter for the json_each() queries."""
    return json.dumps(list(values))
