"""The engine's Transaction on a sqlite3 connection, run in the writer thread."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from dogqueue.backend.kit.rows import job_row, moved_row, to_micros
from dogqueue.backend.sqlite.chain import save_heads, stored_heads
from dogqueue.backend.sqlite.queries import Q
from dogqueue.core.codec import encode_event
from dogqueue.core.cron import prefix_end
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.status import JobStatus
from dogqueue.engine import RefusedAfterWrite
from dogqueue.log.stored import stored_job

_replace_seq = msgspec.structs.replace
#: Ready jobs read ahead per refill of the candidate list: few at first, so a single
#: dequeue reads little, then doubling while one transaction keeps leasing.
_FIRST_READ_AHEAD = 4
_MAX_READ_AHEAD = 256
#: A ready candidate: (-priority, run_at, enqueue_seq, state bytes), in dequeue order.
_Candidate = tuple[int, int, int, bytes]


class LogEndMemo:
    """What one writer connection knows of the end of the log between its transactions:
    the next position and the chain heads its last commit left. Used only while `PRAGMA
    data_version` shows that no other connection (of this process or another) has
    committed since; any doubt (a rollback, a write outside a transaction) forgets it."""

    #: Most chain heads remembered; past it they are forgotten and read again.
    MAX_HEADS = 10_000

    def __init__(self) -> None:
        self.data_version: int | None = None
        self.next_seq = 0
        self.heads: dict[str, tuple[int, bytes, int]] = {}

    def forget(self) -> None:
        """Trust nothing remembered: the next transaction reads the end of the log."""
        self.data_version = None
        self.heads = {}


class SqliteTransaction:
    """One write transaction. Job rows and events are buffered and written with one
    `executemany` per statement: job rows before any query that reads them (and at the
    commit), events at the commit. A job saved in this transaction is loaded from the
    buffer, not read back and decoded.

    Leasing reads ahead: `next_ready` keeps the next few ready jobs of the queues it was
    asked for, so a batch of leases costs one index read per refill, not one per lease.
    The list is exact because this transaction is the only writer: leasing its head
    drops the head, and any other job write discards the list.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        audit_key: bytes | None = None,
        memo: LogEndMemo | None = None,
    ) -> None:
        self.conn = conn
        self._memo = memo
        self._data_version: int | None = None
        self.next_seq = 0
        self.writes = 0
        self._events: list[tuple[int, str, str, int, str, bytes, bytes, int]] = []
        self._chain = stored_heads(conn, audit_key)
        self._ready_key: tuple[str, tuple[str, ...], int] | None = None
        self._ready: list[_Candidate] = []
        self._read_ahead = _FIRST_READ_AHEAD
        #: Job states read ahead by `prefetch`, as stored; a job's entry goes when it is saved.
        self._states: dict[tuple[str, str], bytes] = {}
        #: Dependents read ahead by `prefetch`; a parent's entry goes when a job is
        #: created after it.
        self._children: dict[tuple[str, str], list[str]] = {}
        #: Job rows saved but not yet written, and each saved job's latest state.
        self._inserts: list[tuple[Any, ...]] = []
        self._updates: list[tuple[Any, ...]] = []
        self._saved: dict[tuple[str, str], JobInfo] = {}
        #: This transaction's net change to each (tenant, status) count of `job_counts`.
        self._counts: dict[tuple[str, str], int] = {}

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.writes = 0
        self._events.clear()
        memo = self._memo
        if memo is None:
            self.next_seq = self.conn.execute(Q["next_seq"]).fetchone()[0]
            self._chain.restart()
        else:
            self._data_version = self.conn.execute(Q["data_version"]).fetchone()[0]
            if memo.data_version is None or memo.data_version != self._data_version:
                memo.forget()  # another connection committed: read the end of the log
                memo.next_seq = self.conn.execute(Q["next_seq"]).fetchone()[0]
            self.next_seq = memo.next_seq
            self._chain.restart(memo.heads)
        self._forget_buffers()
        self._forget_ready()

    def commit(self) -> None:
        self._write_jobs()
        if self._counts:
            changes = [(*key, change) for key, change in self._counts.items() if change]
            self._counts.clear()
            self.conn.executemany(Q["add_to_job_count"], changes)
        if self._events:
            self.conn.executemany(Q["insert_event"], self._events)
            self._events.clear()
            save_heads(self.conn, self._chain)
        self.conn.execute("COMMIT")
        memo = self._memo
        if memo is not None:
            memo.data_version = self._data_version
            memo.next_seq = self.next_seq
            if len(memo.heads) > memo.MAX_HEADS:
                memo.heads = {}

    def rollback(self) -> None:
        self._events.clear()
        self._forget_buffers()
        self._forget_ready()
        if self._memo is not None:
            self._memo.forget()
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _forget_buffers(self) -> None:
        """Drop what this transaction read ahead and what it has yet to write."""
        self._states.clear()
        self._children.clear()
        self._inserts.clear()
        self._updates.clear()
        self._saved.clear()
        self._counts.clear()

    def _write_jobs(self) -> None:
        """Write the buffered job rows: inserts first, since a job created and changed in
        one transaction is inserted, then updated."""
        if self._inserts:
            self.conn.executemany(Q["insert_job"], self._inserts)
            self._inserts.clear()
        if self._updates:
            cursor = self.conn.executemany(Q["update_job"], self._updates)
            expected = len(self._updates)
            self._updates.clear()
            if cursor.rowcount != expected:
                # Not this unit's refusal: the batch must roll back (a later unit may be
                # the one running when the buffer is written).
                changed = StorageError("a job row changed under this transaction")
                raise RefusedAfterWrite(repr(changed)) from changed

    def _forget_ready(self) -> None:
        self._ready_key = None
        self._ready = []

    # -- Transaction -------------------------------------------------------------------

    def prefetch(self, jobs: Sequence[tuple[str, str]]) -> None:
        """Read the states and dependents of these (tenant_id, job_id) jobs with two
        queries per tenant, so that loading each of them, or its dependents, costs no
        query after. Jobs not found are left to `load`."""
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, job_id in jobs:
            by_tenant.setdefault(tenant_id, []).append(job_id)
        execute = self.conn.execute
        for tenant_id, job_ids in by_tenant.items():
            ids = json.dumps(job_ids)
            for job_id, state in execute(Q["load_jobs"], (tenant_id, ids)).fetchall():
                self._states[(tenant_id, job_id)] = state
            children: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
            for parent_id, child_id in execute(Q["dependents_of_jobs"], (tenant_id, ids)):
                children[parent_id].append(child_id)
            for job_id, found in children.items():
                self._children[(tenant_id, job_id)] = found

    def load(self, tenant_id: str, job_id: str) -> JobInfo | None:
        saved = self._saved.get((tenant_id, job_id))
        if saved is not None:
            return saved
        state = self._states.get((tenant_id, job_id))
        if state is None:
            row = self.conn.execute(Q["load_job"], (tenant_id, job_id)).fetchone()
            if row is None:
                return None
            state = row[0]
        return stored_job(state, f"job {job_id!r}")

    def job_for_key(self, tenant_id: str, idempotency_key: str) -> str | None:
        self._write_jobs()
        row = self.conn.execute(Q["job_for_key"], (tenant_id, idempotency_key)).fetchone()
        return None if row is None else str(row[0])

    def latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        self._write_jobs()
        row = self.conn.execute(Q["latest_key"], (tenant_id, prefix, prefix_end(prefix))).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        key = (tenant_id, queues, to_micros(now))
        if key != self._ready_key or not self._ready:
            self._ready = self._read_ready(*key)
            self._ready_key = key
        return stored_job(self._ready[0][3], "a ready job") if self._ready else None

    def _read_ready(self, tenant_id: str, queues: tuple[str, ...], now_us: int) -> list[_Candidate]:
        """The first ready jobs over `queues` in dequeue order. The best n of the union
        of each queue's best n are the best n overall."""
        self._write_jobs()
        limit = self._read_ahead
        self._read_ahead = min(limit * 2, _MAX_READ_AHEAD)
        execute = self.conn.execute
        query = Q["ready_candidates"]
        found: list[_Candidate] = []
        for queue in queues:
            rows = execute(query, (tenant_id, queue, now_us, limit)).fetchall()
            found.extend((-priority, run_at, seq, state) for priority, run_at, seq, state in rows)
        if len(queues) > 1:
            found.sort(key=lambda candidate: candidate[:3])
            del found[limit:]
        return found

    def dependents(self, tenant_id: str, job_id: str) -> list[str]:
        known = self._children.get((tenant_id, job_id))
        if known is not None:
            return list(known)
        rows = self.conn.execute(Q["dependents"], (tenant_id, job_id)).fetchall()
        return [str(row[0]) for row in rows]

    def expired_leases(self, tenant_id: str | None, now: datetime) -> list[JobInfo]:
        self._write_jobs()
        if tenant_id is None:
            rows = self.conn.execute(Q["expired_leases"], (to_micros(now),))
        else:
            rows = self.conn.execute(Q["expired_leases_of_tenant"], (tenant_id, to_micros(now)))
        return [stored_job(row[0], "a leased job") for row in rows.fetchall()]

    def append(self, event: AnyEvent) -> AnyEvent:
        seq = self.next_seq
        self.next_seq += 1
        self.writes += 1
        data = encode_event(event)
        digest, tpos = self._chain.link(event.tenant_id, seq, data)
        self._events.append(
            (seq, event.tenant_id, event.job_id, event.version, event.type, data, digest, tpos)
        )
        return _replace_seq(event, seq=seq)

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        self.writes += 1
        self._keep_ready(before, after)
        self._saved[(after.tenant_id, after.job_id)] = after
        if before is None or before.status is not after.status:
            counts = self._counts
            if before is not None:
                left = (before.tenant_id, before.status.value)
                counts[left] = counts.get(left, 0) - 1
            entered = (after.tenant_id, after.status.value)
            counts[entered] = counts.get(entered, 0) + 1
        if before is None:
            self._inserts.append(job_row(after))
            if after.message.after:
                self.conn.executemany(Q["insert_edge"], edge_rows(after))
                for parent in after.message.after:
                    self._children.pop((after.tenant_id, parent), None)
            return
        self._updates.append((*moved_row(after), after.enqueue_seq, before.version))

    def _keep_ready(self, before: JobInfo | None, after: JobInfo) -> None:
        """Keep the read-ahead list exact across a job write."""
        if not self._ready:
            return
        if (
            before is not None
            and before.enqueue_seq == self._ready[0][2]
            and after.status is not JobStatus.ENQUEUED
        ):
            del self._ready[0]  # the head was leased (or canceled): the rest stay in order
        else:
            self._forget_ready()


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
