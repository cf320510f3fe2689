"""The SQLite backend's projection in memory: the jobs of the log that changed since
the checkpoint it started from, with their dequeue, lease and dependents indexes (the
kit's working set), at a known log position, over the checkpoint tables for the rest.

Each writing process keeps one. It starts from the checkpoint tables (the projection as
of the position stamped on them) without reading their jobs: the checkpoint's indexes
are read a page at a time, in dequeue (or expiry) order, as keys, ids and versions
(`ColdRange`), and a job's state is decoded from its row only when a unit reads it. It
folds the events after that position; under the write lock each transaction folds the
events other connections appended since, so every decision is made on the whole log (most
of them are folded before the lock is taken, in a read snapshot: `fold_ahead`).

A job this process never saw change is as its checkpoint row says (a later checkpoint
writes only jobs that changed, which this process folded): so a checkpoint entry counts
while its job is not in memory with another state, nor among the jobs that ended since
(`ended_at`). Jobs leave memory once terminal (they never change again); they are
forgotten once a checkpoint covers their end. Idempotency keys are not kept: the log's
unique index on them answers (`SqliteTransaction.job_for_key`).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from typing import NamedTuple, get_args

import msgspec

from dogqueue.backend.kit.rows import from_micros, to_micros
from dogqueue.backend.kit.workingset import UndoableWorkingSet
from dogqueue.backend.sqlite.queries import Q
from dogqueue.core.errors import CorruptLog
from dogqueue.core.events import AnyControlEvent, Enqueued
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.core.status import TERMINAL_STATUSES, JobPriority, JobStatus
from dogqueue.log.stored import stored_event, stored_event_unstamped, stored_job

logger = logging.getLogger(__name__)
#: Events read per query while catching up.
CATCH_UP_PAGE = 10_000
#: Checkpoint index entries read per query.
COLD_PAGE = 128
#: Jobs held or remembered as ended before a look at the checkpoint lets go of those it
#: covers (at least; after a look, twice as many as it kept).
LET_GO_AT = 4_096
#: Below every key of the checkpoint's indexes (microseconds, positions).
_BEFORE_ALL = (-(2**63), 0)
#: Priorities, highest (leased first) first.
_PRIORITIES = sorted((int(p) for p in JobPriority), reverse=True)
#: Events of a tenant's control stream: a fold of job states skips them.
_CONTROL_TYPES = frozenset(get_args(AnyControlEvent))
_ENQUEUED, _LEASED = JobStatus.ENQUEUED, JobStatus.LEASED
#: Each status's value (an enum's `.value` is a property, read per folded event).
_STATUS_VALUES = {status: status.value for status in JobStatus}
_stamp = msgspec.structs.replace


def job_from_log(
    conn: sqlite3.Connection, tenant_id: str, job_id: str, upto: int | None = None
) -> JobInfo | None:
    """A job's state as the fold of its events in the log, up to position `upto` if
    given (None: it has none)."""
    state: JobInfo | None = None
    for seq, data in conn.execute(Q["job_events"], (tenant_id, job_id)):
        if upto is not None and seq > upto:
            break
        state = evolve(state, stored_event(data, seq))
    return state


class Changes(NamedTuple):
    """What a checkpoint at `position` must write over the one at `base`: each changed
    job's state at `position`, and its status at `base` (None: not there)."""

    base: int
    position: int
    jobs: dict[JobKey, JobInfo]
    base_status: dict[JobKey, str | None]


class ColdEntry(msgspec.Struct, frozen=True, gc=False):
    """One checkpoint index entry: its time key (run_at or lease expiry, microseconds),
    the job's enqueue position, id and version in the checkpoint. Untracked by the cycle
    collector, like the working set's entries."""

    micros: int
    enqueue_seq: int
    job_id: str
    version: int


class ColdRange:
    """One range of a checkpoint index (a tenant's queue at one priority, or a tenant's
    leases), read a page at a time in its order; entries are popped from its head."""

    __slots__ = ("_after", "_exhausted", "_query", "_range", "_reversed", "_taken")

    def __init__(self, query: str, range_: tuple[object, ...]) -> None:
        self._query = query
        self._range = range_
        self._after = _BEFORE_ALL
        #: The unread entries fetched, head last.
        self._reversed: list[ColdEntry] = []
        self._exhausted = False
        #: The entries popped in the open transaction, oldest first.
        self._taken: list[ColdEntry] = []

    def head(self, conn: sqlite3.Connection) -> ColdEntry | None:
        """The first entry (None: none left)."""
        if not self._reversed and not self._exhausted:
            rows = conn.execute(self._query, (*self._range, *self._after, COLD_PAGE)).fetchall()
            self._exhausted = len(rows) < COLD_PAGE
            if rows:
                self._after = (rows[-1][0], rows[-1][1])
                self._reversed = [ColdEntry(*row) for row in reversed(rows)]
        return self._reversed[-1] if self._reversed else None

    def pop(self, undoable: bool) -> None:
        """Drop the first entry (`head` returned it); if `undoable`, until `settle`."""
        entry = self._reversed.pop()
        if undoable:
            self._taken.append(entry)

    def settle(self, keep: bool) -> None:
        """Keep the undoable pops (the transaction committed), or put them back."""
        if not keep:
            self._reversed.extend(reversed(self._taken))
        self._taken.clear()


class LogProjection(UndoableWorkingSet):
    """The jobs changed since the checkpoint, as of log position `position`, with their
    indexes, over the checkpoint tables (read through the connection it was loaded on)."""

    def __init__(self) -> None:
        super().__init__()
        #: The last log position folded in.
        self.position = 0
        #: False until loaded from the checkpoint (and after `reset`).
        self.loaded = False
        #: The connection the checkpoint is read through (None: not loaded).
        self._conn: sqlite3.Connection | None = None
        #: Jobs that became terminal in the open transaction: they leave at its commit.
        self._ended: list[JobKey] = []
        #: Jobs that ended and left memory, with the log position they ended at: their
        #: checkpoint rows may still show them live, until a checkpoint covers that.
        self.ended_at: dict[JobKey, int] = {}
        self._let_go_at = LET_GO_AT
        #: The checkpoint's ready entries per (tenant, queue, priority) and lease
        #: entries per tenant, read on demand; the (tenant, queue)s and tenants that had
        #: some when loaded (later checkpoint entries are of jobs in memory).
        self._cold_ready: dict[tuple[str, str, int], ColdRange] = {}
        self._cold_leases: dict[str, ColdRange] = {}
        self.cold_queues: set[tuple[str, str]] = set()
        self.cold_lease_tenants: set[str] = set()
        #: Whether the checkpoint held dependency edges when loaded.
        self._cold_edges = False
        #: The checkpoint position the changes below start from (None: unknown, so
        #: none are kept), each job changed since as it is now, and its status then
        #: (None: created since). `take_changes` hands them to the checkpoint's writer.
        self.base: int | None = None
        self.changed: dict[JobKey, JobInfo] = {}
        self.base_status: dict[JobKey, str | None] = {}
        #: Each job the open transaction saved, with its entry in `changed` before its
        #: first save (what a rollback puts back).
        self._touched: dict[JobKey, JobInfo | None] = {}
        #: The checkpoint ranges the open transaction popped entries of.
        self._cold_popped: set[ColdRange] = set()
        #: Whether other connections write the file (they appended, or held the write
        #: lock, since `fold_ahead` last found nothing new): only then does it ask, so
        #: a process alone pays nothing for it.
        self.others_write = False

    def reset(self) -> None:
        """Forget everything: the next `load` starts again from the checkpoint (after
        the log was rewritten outside a transaction of this process)."""
        self.__init__()  # type: ignore[misc]

    # Keys are read from the log's unique index, not kept here.
    def _add_key(self, tenant_id: str, key: str, job_id: str) -> None:
        pass

    def _drop_key(self, tenant_id: str, key: str) -> None:
        pass

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        key = (after.tenant_id, after.job_id)
        if before is None and self._undo is not None and not after.message.after:
            # A new job without parents (most jobs), in one frame: its row and index
            # entry, and what a rollback and the next checkpoint need of it. It is not
            # terminal, and its key, if any, is the log's to keep.
            self._rows_before[key] = None
            self.jobs[key] = after
            self._index(after)
            if self.base is not None:
                self.changed[key] = after
                self.base_status[key] = None
                self._touched[key] = None
            return
        super().save(before, after)
        if after.status.is_terminal:
            self._ended.append(key)
        if self.base is None:
            return
        changed = self.changed
        previous = changed.get(key)
        changed[key] = after
        if previous is None:
            self.base_status[key] = None if before is None else before.status.value
        if self._undo is not None and key not in self._touched:
            self._touched[key] = previous

    def take_changes(self) -> Changes | None:
        """The jobs changed since `base`, as of `position`, handed over once: the next
        changes start from `position` (None: unknown base, or nothing changed)."""
        if self.base is None or not self.changed or self._undo is not None:
            return None
        changes = Changes(self.base, self.position, self.changed, self.base_status)
        self.base, self.changed, self.base_status = self.position, {}, {}
        return changes

    def commit(self) -> None:
        super().commit()
        self._touched.clear()
        if self._cold_popped:  # most units of a lone caller touch no checkpoint range
            self._settle_cold(keep=True)
        if self._ended:
            self._evict()
        if len(self.ended_at) + len(self.jobs) >= self._let_go_at:
            assert self._conn is not None
            self.let_go(int(self._conn.execute(Q["checkpoint_position"]).fetchone()[0]))

    def rollback(self) -> None:
        super().rollback()
        self._ended.clear()
        for key, previous in self._touched.items():
            if previous is None:
                self.changed.pop(key, None)
                self.base_status.pop(key, None)
            else:
                self.changed[key] = previous
        self._touched.clear()
        self._settle_cold(keep=False)

    def _settle_cold(self, keep: bool) -> None:
        for cold in self._cold_popped:
            cold.settle(keep)
        self._cold_popped.clear()

    def _evict(self) -> None:
        """Drop the jobs that became terminal: memory stays bounded by live work."""
        for key in self._ended:
            job = self.jobs.get(key)
            if job is not None and job.status.is_terminal:
                del self.jobs[key]
                self.ended_at[key] = self.position
        self._ended.clear()

    def let_go(self, covered: int) -> None:
        """Let go of what the checkpoint covers, now at position `covered` or later
        (between units): ended jobs whose end it holds, and, once it covers `base`, the
        jobs held that did not change since (their rows say what they are); memory then
        holds only what changed since the checkpoint. The checkpoint's index pages read
        so far are read again (some listed those jobs)."""
        assert self._conn is not None and self._undo is None
        self.ended_at = {key: at for key, at in self.ended_at.items() if at > covered}
        if self.base is not None and self.base <= covered:
            changed = self.changed
            for key in [key for key in self.jobs if key not in changed]:  # no item tuples
                job = self.jobs.pop(key)
                if job.status is JobStatus.ENQUEUED:
                    self.cold_queues.add((job.tenant_id, job.message.queue))
                elif job.status is JobStatus.LEASED:
                    self.cold_lease_tenants.add(job.tenant_id)
            self.keep_held_entries()
            self._cold_edges = bool(self._conn.execute(Q["has_edges"]).fetchone()[0])
        self._let_go_at = max(LET_GO_AT, 2 * (len(self.ended_at) + len(self.jobs)))
        self._cold_ready.clear()
        self._cold_leases.clear()

    # -- the checkpoint, read lazily ------------------------------------------------------

    def _from_checkpoint(
        self, key: JobKey, version: int | None = None, enqueue_seq: int | None = None
    ) -> JobInfo | None:
        """A job as its checkpoint row says (None: no row), or the fold of its log if
        the row does not decode; `version`: only the row at that version (else None);
        `enqueue_seq`, if known, finds the row in one step. The caller knows the row is
        current (the job is not in memory, nor ended)."""
        assert self._conn is not None
        if enqueue_seq is None:
            row = self._conn.execute(Q["load_job"], key).fetchone()
        else:
            row = self._conn.execute(Q["checkpointed_job"], (enqueue_seq,)).fetchone()
        if row is None:
            return None
        try:
            job = stored_job(row[0], f"job {key[1]!r}")
        except CorruptLog:
            logger.warning("checkpoint row of job %r does not decode: folding its log", key[1])
            job = job_from_log(self._conn, *key)  # type: ignore[assignment]
            if job is None:
                return None
        if version is not None and job.version != version:
            return None
        if not job.status.is_terminal:
            self.jobs[key] = job  # decoded once; no undo needed: it is the current state
        return job

    def _cold_is_current(self, tenant_id: str, entry: ColdEntry, status: JobStatus) -> bool:
        """Whether a checkpoint entry still stands: its job has that version and status."""
        key = (tenant_id, entry.job_id)
        job = self.jobs.get(key)
        if job is not None:
            return job.version == entry.version and job.status is status
        return key not in self.ended_at

    def _cold_head(self, cold: ColdRange, tenant_id: str, status: JobStatus) -> ColdEntry | None:
        """The first entry of `cold` that still stands, dropping those before it."""
        assert self._conn is not None
        while (entry := cold.head(self._conn)) is not None:
            if self._cold_is_current(tenant_id, entry, status):
                return entry
            self._pop_cold(cold)
        return None

    def _pop_cold(self, cold: ColdRange) -> None:
        """Drop the head of `cold`; a rollback puts it back."""
        undoable = self._undo is not None
        cold.pop(undoable)
        if undoable:
            self._cold_popped.add(cold)

    def _cold_range(self, tenant_id: str, queue: str, priority: int) -> ColdRange | None:
        if (tenant_id, queue) not in self.cold_queues:
            return None
        key = (tenant_id, queue, priority)
        cold = self._cold_ready.get(key)
        if cold is None:
            cold = self._cold_ready[key] = ColdRange(Q["cold_ready_page"], key)
        return cold

    def _cold_ready_head(
        self, tenant_id: str, queue: str, due: int | None
    ) -> tuple[int, ColdEntry] | None:
        """The checkpoint's first enqueued job of a queue (due by `due` microseconds if
        given), with its priority: the highest priority whose head is due wins."""
        for priority in _PRIORITIES:
            cold = self._cold_range(tenant_id, queue, priority)
            if cold is None:
                return None
            entry = self._cold_head(cold, tenant_id, JobStatus.ENQUEUED)
            if entry is not None and (due is None or entry.micros <= due):
                return priority, entry
        return None

    # -- the read half of Transaction, over memory and the checkpoint -------------------

    def load(self, tenant_id: str, job_id: str) -> JobInfo | None:
        """A job in memory or as its checkpoint row says (None: neither; the caller
        reads the log)."""
        key = (tenant_id, job_id)
        job = self.jobs.get(key)
        if job is not None or key in self.ended_at or self._conn is None:
            return job
        return self._from_checkpoint(key)

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        best = super().next_ready(tenant_id, queues, now)
        if not self.cold_queues:
            return best
        best_key = (
            None if best is None else (-int(best.message.priority), best.run_at, best.enqueue_seq)
        )
        due = to_micros(now)
        cold_best: tuple[int, ColdEntry] | None = None
        for queue in queues:
            head = self._cold_ready_head(tenant_id, queue, due)
            if head is None:
                continue
            priority, entry = head
            key = (-priority, from_micros(entry.micros), entry.enqueue_seq)
            if best_key is None or key < best_key:
                best_key, cold_best = key, head
        if cold_best is None:
            return best
        entry = cold_best[1]
        job = self.jobs.get((tenant_id, entry.job_id))
        if job is not None:
            return job
        return self._from_checkpoint((tenant_id, entry.job_id), enqueue_seq=entry.enqueue_seq)

    def next_run_at(
        self, queues: tuple[str, ...], tenant_ids: tuple[str, ...] | None
    ) -> datetime | None:
        found = super().next_run_at(queues, tenant_ids)
        for tenant_id, queue in self.cold_queues:
            if queue not in queues or (tenant_ids is not None and tenant_id not in tenant_ids):
                continue
            for priority in _PRIORITIES:  # each range is in run_at order
                cold = self._cold_range(tenant_id, queue, priority)
                entry = (
                    None if cold is None else self._cold_head(cold, tenant_id, JobStatus.ENQUEUED)
                )
                if entry is not None:
                    run_at = from_micros(entry.micros)
                    found = run_at if found is None else min(found, run_at)
        return found

    def enqueued_tenants(self) -> set[str]:
        """The tenants that may have an enqueued job."""
        return (
            {t for t, _ in self.scheduled}
            | {t for t, _ in self.ready}
            | {t for t, _ in self.cold_queues}
        )

    def expired_leases(self, tenant_id: str | None, now: datetime) -> list[JobInfo]:
        expired = super().expired_leases(tenant_id, now)
        if not self.cold_lease_tenants:
            return expired
        seen = {(job.tenant_id, job.job_id) for job in expired}
        tenants = [tenant_id] if tenant_id is not None else sorted(self.cold_lease_tenants)
        due = to_micros(now)
        for tenant in tenants:
            if tenant not in self.cold_lease_tenants:
                continue
            cold = self._cold_leases.get(tenant)
            if cold is None:
                cold = self._cold_leases[tenant] = ColdRange(Q["cold_lease_page"], (tenant,))
            while (entry := self._cold_head(cold, tenant, JobStatus.LEASED)) is not None:
                if entry.micros > due:
                    break
                self._pop_cold(cold)
                job = self.load(tenant, entry.job_id)
                # A later checkpoint may list a lease the memory's index holds too.
                if job is not None and (tenant, entry.job_id) not in seen:
                    seen.add((tenant, entry.job_id))
                    expired.append(job)
        expired.sort(key=lambda job: (job.lease_expires_at, job.enqueue_seq))
        return expired

    def dependents(self, tenant_id: str, job_id: str) -> list[str]:
        children = super().dependents(tenant_id, job_id)
        if not self._cold_edges:
            return children
        assert self._conn is not None
        rows = self._conn.execute(Q["dependents"], (tenant_id, job_id)).fetchall()
        # Those in memory are newer than every edge the checkpoint held when loaded;
        # a later checkpoint may hold some of them too.
        cold = [str(row[0]) for row in rows]
        known = set(cold)
        return cold + [child for child in children if child not in known]

    # -- loading and catching up ---------------------------------------------------------

    def load_checkpoint(self, conn: sqlite3.Connection) -> None:
        """Start from the checkpoint tables, inside the caller's read (or write)
        transaction, reading only which queues and tenants have live jobs there;
        `catch_up` folds the events after them."""
        self.reset()
        self._conn = conn
        self.position = int(conn.execute(Q["checkpoint_position"]).fetchone()[0])
        self.base = self.position
        row = conn.execute(Q["first_ready_queue"]).fetchone()
        while row is not None:
            self.cold_queues.add((str(row[0]), str(row[1])))
            row = conn.execute(Q["next_ready_queue"], row).fetchone()
        row = conn.execute(Q["first_lease_tenant"]).fetchone()
        while row is not None:
            self.cold_lease_tenants.add(str(row[0]))
            row = conn.execute(Q["next_lease_tenant"], row).fetchone()
        self._cold_edges = bool(conn.execute(Q["has_edges"]).fetchone()[0])
        self.loaded = True

    def fold_ahead(self, conn: sqlite3.Connection, seen: int | None) -> int:
        """Outside any transaction, before a write one (and before each retry while
        another connection holds the lock): if other connections write the file and one
        committed since `PRAGMA data_version` was `seen`, fold what they appended in a
        read snapshot (readers do not wait for the write lock), so the write transaction
        folds only what was appended since; the number folded."""
        if not (self.loaded and self.others_write):
            return 0
        if conn.execute(Q["data_version"]).fetchone()[0] == seen:
            self.others_write = False
            return 0
        conn.execute("BEGIN")
        try:
            return self.catch_up(conn)
        finally:
            conn.execute("COMMIT")

    def catch_up(self, conn: sqlite3.Connection) -> int:
        """Fold every event after `position` (outside any unit's undo); the number folded.
        If it fails, everything is forgotten (a page may be half folded): the next look
        starts again from the checkpoint."""
        assert self._undo is None, "catch up before a unit of work, never inside one"
        try:
            return self._catch_up(conn)
        except BaseException:
            self.reset()
            raise

    def _catch_up(self, conn: sqlite3.Connection) -> int:
        folded = 0
        while rows := conn.execute(Q["read_events"], (self.position, CATCH_UP_PAGE)).fetchall():
            self._fold_rows(conn, rows)
            folded += len(rows)
            self.position = int(rows[-1][0])
            self._evict()
            self.others_write = True
            if len(rows) < CATCH_UP_PAGE:
                break  # a short page ends the log in this snapshot
        return folded

    def _fold_rows(self, conn: sqlite3.Connection, rows: list[tuple[int, bytes]]) -> None:
        """Fold events read from the log (no unit open). Per event, the work of `save`
        without what a fold never needs (undo, idempotency keys), in one frame: every
        other writer's event comes through here, in each writing process."""
        jobs = self.jobs
        changed = self.changed if self.base is not None else None
        base_status = self.base_status
        ended = self._ended
        index = self._index
        for seq, data in rows:
            # Only an enqueued event's position is folded (its job's enqueue_seq): the
            # others are not stamped with theirs.
            event = stored_event_unstamped(data, seq)
            kind = type(event)
            if kind is Enqueued:
                event = _stamp(event, seq=seq)
            elif kind in _CONTROL_TYPES:
                continue
            key = (event.tenant_id, event.job_id)
            before = jobs.get(key)
            if before is None and kind is not Enqueued:
                before = self._before(conn, key, event.version, seq)
                if before is None:
                    continue  # a history this file no longer holds (archived)
            after = evolve(before, event)
            jobs[key] = after
            if before is None and after.message.after:
                self._adopt(after)
            status = after.status
            if status is _ENQUEUED or status is _LEASED:
                index(after)
            elif status in TERMINAL_STATUSES:
                ended.append(key)
            if changed is not None:
                if key not in changed:
                    base_status[key] = None if before is None else _STATUS_VALUES[before.status]
                changed[key] = after

    def _before(
        self, conn: sqlite3.Connection, key: JobKey, version: int, seq: int
    ) -> JobInfo | None:
        """A job not in memory as it was just before its event `version` at `seq`: its
        checkpoint row if at the version before (a checkpoint written by another process
        may be ahead of this one), else the fold of its log up to there."""
        if key not in self.ended_at:
            job = self._from_checkpoint(key, version - 1)
            if job is not None:
                return job
        return job_from_log(conn, *key, upto=seq - 1)
