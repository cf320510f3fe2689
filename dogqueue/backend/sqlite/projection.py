"""The SQLite backend's projection in memory: the live jobs of the log with their
dequeue, lease and dependents indexes (the kit's working set), at a known log position.

Each writing process keeps one. It starts from the checkpoint tables (the projection as
of the position stamped on them) and folds the events after that position; under the
write lock each transaction folds the events other connections appended since, so every
decision is made on the whole log. Jobs leave memory once terminal (they never change
again): a later read folds their history from the log. Idempotency keys are not kept:
the log's unique index on them answers (`SqliteTransaction.job_for_key`).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import NamedTuple

from dogqueue.backend.kit.workingset import UndoableWorkingSet
from dogqueue.backend.sqlite.queries import Q
from dogqueue.core.errors import CorruptLog
from dogqueue.core.events import Enqueued, is_control
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.log.stored import stored_event, stored_job

logger = logging.getLogger(__name__)
#: Events read per query while catching up.
CATCH_UP_PAGE = 10_000


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


class LogProjection(UndoableWorkingSet):
    """The live jobs as of log position `position`, with their indexes."""

    def __init__(self) -> None:
        super().__init__()
        #: The last log position folded in.
        self.position = 0
        #: False until loaded from the checkpoint (and after `reset`).
        self.loaded = False
        #: Jobs that became terminal in the open transaction: they leave at its commit.
        self._ended: list[JobKey] = []
        #: The checkpoint position the changes below start from (None: unknown, so
        #: none are kept), each job changed since as it is now, and its status then
        #: (None: created since). `take_changes` hands them to the checkpoint's writer.
        self.base: int | None = None
        self.changed: dict[JobKey, JobInfo] = {}
        self.base_status: dict[JobKey, str | None] = {}
        #: What the open transaction did to `changed`: (job, its entry before).
        self._touched: list[tuple[JobKey, JobInfo | None]] = []

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
        super().save(before, after)
        key = (after.tenant_id, after.job_id)
        if after.status.is_terminal:
            self._ended.append(key)
        if self.base is None:
            return
        previous = self.changed.get(key)
        self.changed[key] = after
        if previous is None:
            self.base_status[key] = None if before is None else before.status.value
        if self._undo is not None:
            self._touched.append((key, previous))

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
        self._evict()

    def rollback(self) -> None:
        super().rollback()
        self._ended.clear()
        for key, previous in reversed(self._touched):
            if previous is None:
                self.changed.pop(key, None)
                self.base_status.pop(key, None)
            else:
                self.changed[key] = previous
        self._touched.clear()

    def _evict(self) -> None:
        """Drop the jobs that became terminal: memory stays bounded by live work."""
        for key in self._ended:
            job = self.jobs.get(key)
            if job is not None and job.status.is_terminal:
                del self.jobs[key]
        self._ended.clear()

    def load(self, tenant_id: str, job_id: str) -> JobInfo | None:
        """A live job (None if not live: the caller reads the log)."""
        return self.jobs.get((tenant_id, job_id))

    def load_checkpoint(self, conn: sqlite3.Connection) -> None:
        """Start from the checkpoint tables, inside the caller's read (or write)
        transaction; `catch_up` folds the events after them."""
        self.reset()
        try:
            rows = conn.execute(Q["live_jobs"])
            jobs = [stored_job(row[0], "a checkpointed job") for row in rows]
        except CorruptLog:
            # The log is the truth: fold all of it (verify reports the bad row).
            logger.warning("the projection checkpoint does not decode: folding the whole log")
            self.loaded = True
            return
        self.position = int(conn.execute(Q["checkpoint_position"]).fetchone()[0])
        self.base = self.position
        for parent_tenant, parent, child in conn.execute(Q["all_edges"]):
            self.children[(parent_tenant, parent)].append(child)
        for job in sorted(jobs, key=lambda j: j.enqueue_seq):
            self.jobs[(job.tenant_id, job.job_id)] = job
            self._index(job)
        self.loaded = True

    def catch_up(self, conn: sqlite3.Connection) -> int:
        """Fold every event after `position` (outside any unit's undo); the number folded."""
        assert self._undo is None, "catch up before a unit of work, never inside one"
        folded = 0
        while rows := conn.execute(Q["read_events"], (self.position, CATCH_UP_PAGE)).fetchall():
            for seq, data in rows:
                event = stored_event(data, seq)
                if is_control(event):
                    continue
                key = (event.tenant_id, event.job_id)
                before = self.jobs.get(key)
                if before is None and not isinstance(event, Enqueued):
                    # A job that left memory (terminal, so this should not happen) or
                    # one this process never saw: its history up to here decides.
                    after = job_from_log(conn, *key, upto=seq)
                    if after is None:
                        continue
                else:
                    after = evolve(before, event)
                self.save(before, after)
            folded += len(rows)
            self.position = int(rows[-1][0])
            self._evict()
        return folded
