"""The projection checkpoint: the tables `jobs`, `job_edges` and `job_counts`, stamped
with the log position they cover (`projection_checkpoint`), brought up to the end of the
log by folding the events after that position onto them.

A catch-up is one write transaction (all or nothing: a crash in the middle leaves the
checkpoint where it was, still exact for its position). It is a pure function of the
checkpoint and the log, so any process may run it: the backend's background thread
(`ProjectionCheckpointer`), archival before it cuts, the dashboard's reads. A reader that
may not write folds the tail in memory instead (`tail_of`, used by the log reader).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import NamedTuple

from dogqueue.backend.kit.rows import job_row, moved_row
from dogqueue.backend.sqlite.checkpointer import ConnectionThread
from dogqueue.backend.sqlite.connection import retry_busy
from dogqueue.backend.sqlite.projection import Changes, LogProjection
from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import edge_rows
from dogqueue.core.errors import BackendClosed, StorageError
from dogqueue.core.events import Enqueued, is_control
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.log.stored import stored_event, stored_job

logger = logging.getLogger(__name__)
#: Events folded per catch-up transaction: bounds how long it holds the write lock.
CHECKPOINT_PAGE = 2_000
#: A checkpoint starts once this many events were committed since the last one ...
CHECKPOINT_EVERY_EVENTS = 20_000
#: ... or this many seconds passed with some committed (checked at commits, and by the
#: writer's timer while it is idle).
CHECKPOINT_EVERY_SECONDS = 5.0


class Tail(NamedTuple):
    """The events after a checkpoint, folded onto it: each changed job's row in the
    checkpoint (None: not there) and its state at the end of the tail."""

    position: int
    end: int
    events: int
    changed: dict[JobKey, tuple[JobInfo | None, JobInfo]]


def checkpoint_position(conn: sqlite3.Connection) -> int:
    """The log position the checkpoint tables cover."""
    return int(conn.execute(Q["checkpoint_position"]).fetchone()[0])


def tail_of(conn: sqlite3.Connection, limit: int | None = None) -> Tail:
    """Fold the (first `limit`) events after the checkpoint onto its rows, in memory,
    inside the caller's transaction (read or write)."""
    position = checkpoint_position(conn)
    rows = conn.execute(Q["read_events"], (position, -1 if limit is None else limit)).fetchall()
    changed: dict[JobKey, tuple[JobInfo | None, JobInfo]] = {}
    # A job's row is keyed by its enqueued event's position: a job enqueued after the
    # checkpoint has none, unless one of these (normally none) is its.
    rows_ahead = {row[0] for row in conn.execute(Q["job_rows_after"], (position,))}
    for seq, data in rows:
        event = stored_event(data, seq)
        if is_control(event):
            continue
        key = (event.tenant_id, event.job_id)
        current: JobInfo | None
        if key in changed:
            stored, current = changed[key]
        elif isinstance(event, Enqueued) and seq not in rows_ahead:
            stored = current = None
        else:
            row = conn.execute(Q["load_job"], key).fetchone()
            stored = current = None if row is None else stored_job(row[0], f"job {key[1]!r}")
        if current is not None and event.version <= current.version:
            continue  # the row already holds it (written by a build that wrote rows per event)
        changed[key] = (stored, evolve(current, event))
    return Tail(position, int(rows[-1][0]) if rows else position, len(rows), changed)


def write_tail(conn: sqlite3.Connection, tail: Tail) -> None:
    """Write a folded tail into the checkpoint tables and stamp its end, inside the
    caller's write transaction."""
    inserts, updates, edges = [], [], []
    counts: dict[tuple[str, str], int] = {}
    for stored, job in tail.changed.values():
        if stored is None:
            inserts.append(job_row(job))
            edges.extend(edge_rows(job))
        else:
            updates.append((*moved_row(job), job.enqueue_seq, stored.version))
            left = (stored.tenant_id, stored.status.value)
            counts[left] = counts.get(left, 0) - 1
        entered = (job.tenant_id, job.status.value)
        counts[entered] = counts.get(entered, 0) + 1
    conn.executemany(Q["insert_job"], inserts)
    cursor = conn.executemany(Q["update_job"], updates)
    if cursor.rowcount != len(updates):
        raise StorageError("a checkpoint row changed under its catch-up (corrupt checkpoint)")
    conn.executemany(Q["insert_edge"], edges)
    conn.executemany(
        Q["add_to_job_count"], [(*key, change) for key, change in counts.items() if change]
    )
    conn.execute(Q["set_checkpoint_position"], (tail.end,))


def catch_up_page(conn: sqlite3.Connection, limit: int = CHECKPOINT_PAGE) -> int:
    """One write transaction folding up to `limit` events into the checkpoint; how many
    it folded (fewer than `limit`: the checkpoint reached the end of the log)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        tail = tail_of(conn, limit)
        if tail.events:
            write_tail(conn, tail)
        conn.execute("COMMIT")
        return tail.events
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def write_changes(conn: sqlite3.Connection, changes: Changes) -> bool:
    """Write a writer's changed jobs as the checkpoint at `changes.position`, in one
    write transaction (no event decoded: the states come from memory); False if the
    checkpoint was not where they start from, nor later (then nothing is written)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        stored = checkpoint_position(conn)
        if stored >= changes.position:  # another connection's checkpoint covers them
            conn.execute("COMMIT")
            return True
        if stored < changes.base:
            conn.execute("ROLLBACK")
            return False
        # Past the base, another connection checkpointed part of them: read its rows'
        # statuses, and skip the rows it wrote at the same version (several writing
        # processes each hold every job that changed; one write of each is enough).
        exact = stored == changes.base
        inserts, updates, edges = [], [], []
        counts: dict[tuple[str, str], int] = {}
        for key, job in changes.jobs.items():
            if exact:
                was = changes.base_status[key]
            else:
                row = conn.execute(Q["checkpointed_status"], (job.enqueue_seq,)).fetchone()
                if row is not None and row[1] == job.version:
                    continue
                was = None if row is None else str(row[0])
            if was is None:
                inserts.append(job_row(job))
                edges.extend(edge_rows(job))
            else:
                updates.append((*moved_row(job), job.enqueue_seq))
                counts[(job.tenant_id, was)] = counts.get((job.tenant_id, was), 0) - 1
            entered = (job.tenant_id, job.status.value)
            counts[entered] = counts.get(entered, 0) + 1
        conn.executemany(Q["insert_job"], inserts)
        conn.executemany(Q["overwrite_job"], updates)
        conn.executemany(Q["insert_edge"], edges)
        conn.executemany(
            Q["add_to_job_count"], [(*key, change) for key, change in counts.items() if change]
        )
        conn.execute(Q["set_checkpoint_position"], (changes.position,))
        conn.execute("COMMIT")
        return True
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def catch_up_in(conn: sqlite3.Connection) -> None:
    """Bring the checkpoint to the end of the log inside the caller's write transaction."""
    while True:
        tail = tail_of(conn, CHECKPOINT_PAGE)
        if not tail.events:
            return
        write_tail(conn, tail)


class ProjectionCheckpointer(ConnectionThread):
    """Writes the checkpoint on a thread and connection of its own, once
    `CHECKPOINT_EVERY_EVENTS` events were committed since the last one (or
    `CHECKPOINT_EVERY_SECONDS` passed by `clock`, in seconds), one page per transaction
    so the writer waits for one page at most; `flush` brings it to the end of the log now."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        lock_wait: float | None,
        *,
        every_events: int | None = None,
        every_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(connect, "dogqueue-ckpt")
        self._lock_wait = lock_wait
        self._every_events = CHECKPOINT_EVERY_EVENTS if every_events is None else every_events
        self._every_seconds = CHECKPOINT_EVERY_SECONDS if every_seconds is None else every_seconds
        self._clock = clock
        self._pending = 0
        self._last = clock()
        #: How far this checkpointer wrote the checkpoint (set on its thread), and how
        #: far the projection was told (on the projection owner's thread).
        self._written_to = 0
        self._told_to = 0
        self._running: Future[None] | None = None
        self._closed = False
        self._written = False
        #: Catch-up transactions committed, and checkpoints written from a writer's
        #: memory (for tests and benchmarks).
        self.pages = 0
        self.written_from_memory = 0

    def note_events(
        self, events: int, projection: LogProjection | None = None, at: float | None = None
    ) -> None:
        """Count `events` committed (at time `at` by the clock, if known), from the
        thread that owns `projection`; once a checkpoint is due and none runs, take the
        projection's changes and write them (or, without them, fold the log's tail) on
        this checkpointer's thread."""
        if not events:
            return
        with self._lock:
            self._written = True
            self._pending += events
            self._start_if_due(projection, at)
        self._hand_over_written(projection)

    def note_idle(self, projection: LogProjection | None = None) -> None:
        """From the thread that owns `projection`, between its units: start the
        checkpoint of the events committed since the last one if they are due by time
        (no commit may come to check it)."""
        with self._lock:
            self._start_if_due(projection)
        self._hand_over_written(projection)

    def _hand_over_written(self, projection: LogProjection | None) -> None:
        """Tell `projection` (on its owner's thread) how far the checkpoint was written
        since it was last told: it lets go of what that covers."""
        written = self._written_to
        if projection is not None and projection.loaded and written > self._told_to:
            self._told_to = written
            projection.let_go(written)

    def seconds_until_due(self) -> float | None:
        """By the clock, how long until the events committed since the last checkpoint
        are due (None: there are none, or this checkpointer is closed)."""
        with self._lock:
            if not self._pending or self._closed:
                return None
            return max(0.0, self._every_seconds - (self._clock() - self._last))

    def _start_if_due(self, projection: LogProjection | None, at: float | None = None) -> None:
        """Under the lock: take the projection's changes and write them (or, without
        them, fold the log's tail) on this checkpointer's thread, if due (by the clock, or
        at time `at`) and none runs."""
        due = self._pending >= self._every_events or (
            self._pending > 0
            and (self._clock() if at is None else at) - self._last >= self._every_seconds
        )
        if self._closed or not due:
            return
        if self._running is not None and not self._running.done():
            return
        self._pending = 0
        self._last = self._clock()
        changes = None if projection is None else projection.take_changes()
        if changes is None:
            self._running = self._executor.submit(self._catch_up)
        else:
            self._running = self._executor.submit(self._write, changes)

    def _write(self, changes: Changes) -> None:
        conn = self._connection()
        if retry_busy(lambda: write_changes(conn, changes), self._lock_wait):
            self.written_from_memory += 1
            self._written_to = max(self._written_to, changes.position)
        else:
            self._catch_up()  # the checkpoint was behind these changes: fold the log

    def wait(self) -> None:
        """Wait for the checkpoint under way, if any (for tests)."""
        running = self._running
        if running is not None:
            running.result()

    def flush(self) -> None:
        """Bring the checkpoint to the end of the log (blocking; from any thread but
        this checkpointer's). BackendClosed once `close` has begun."""
        with self._lock:  # `close` marks it closed under the lock before the thread stops
            if self._closed:
                raise BackendClosed("backend is closed")
            catching_up = self._executor.submit(self._catch_up)
        catching_up.result()

    def _catch_up(self) -> None:
        conn = self._connection()
        while True:
            folded = retry_busy(lambda: catch_up_page(conn), self._lock_wait)
            self.pages += folded > 0
            if folded < CHECKPOINT_PAGE:
                self._written_to = max(self._written_to, checkpoint_position(conn))
                return

    def hand_over_last(self, projection: LogProjection) -> None:
        """From the thread that owns `projection`, as its writer closes: start writing
        its changes (no event decoded), so that `close` folds only the events after
        them (other writers' since)."""
        with self._lock:
            if self._closed or not self._written:
                return
            changes = projection.take_changes()
            if changes is not None:
                self._running = self._executor.submit(self._write, changes)

    def close(self) -> None:
        """Write a last checkpoint, then close the connection and the thread."""
        with self._lock:
            self._closed = True
            written = self._written
        try:
            if written:  # nothing of this process's to checkpoint otherwise
                self._executor.submit(self._catch_up).result()
        except (StorageError, sqlite3.Error) as error:
            # The log holds every event; only the derived checkpoint stays behind (a
            # reopen folds the tail, `dogqueue verify` reports a bad row).
            logger.warning("the projection checkpoint was not brought up to date: %s", error)
        finally:
            self._stop()
