"""Archival: move the whole histories of jobs that finished before a cut into an archive
file, so the live log stays bounded, without losing the ability to read and verify them.

What stays behind in the live log: each moved event's position (as a range, so a gap is
not mistaken for a deletion), the hashes that remaining events still link to (anchors),
and one `archive_cuts` row with the archive's fingerprint. The archive file has the same
schema: the moved events with their hashes, anchors for the events they link to that
stayed behind, and the moved jobs' final states.

Idempotency keys: a job's key lives in the projection, which the archived job leaves.
After archival, the key is free: enqueueing with it again creates a new job. Archival
therefore ends the window in which a key deduplicates; choose `--before` accordingly.

What proves a cut: the `archive_cuts` rows form a chain of records (see
`dogqueue.audit.checkpoint.cuts_head`), which a checkpoint pins; and `dogqueue verify`
accepts a moved position only where an archive file holds its event, reading the archives
in log order with the live log, so every chain and checkpoint head is checked across both.
The ranges and anchors left behind are conveniences for readers, never proof.

Archival writes, so it is a tool (the command line calls it), not a backend call; the
backends never import it. The archive file is always SQLite: this module also writes
the archives of other logs (`dogqueue.backend.redis_archive`), and every archive is read
back, and verified, through `SqliteLogReader`. Which jobs move and the anchors a cut
leaves are `dogqueue.backend.kit.archival`'s rules.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime

from dogqueue.backend.kit.archival import (
    ArchiveResult,
    Item,
    Plan,
    finished_before,
    plan_cut,
    runs,
)
from dogqueue.backend.kit.rows import job_row, to_micros
from dogqueue.backend.sqlite.catchup import catch_up_in
from dogqueue.backend.sqlite.chain import fold_heads
from dogqueue.backend.sqlite.connection import connect, migrate, translate
from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import recount_jobs
from dogqueue.core.codec import decode_job
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.log.chain import seq_hash_digest


def _open(path: str) -> sqlite3.Connection:
    """A writable connection to a log file, at this version's schema."""
    try:
        conn = connect(path, "NORMAL")
    except sqlite3.Error as error:
        raise translate(error) from error
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def archive_before(
    live_path: str | os.PathLike[str],
    target: str | os.PathLike[str],
    cut: datetime,
    now: datetime,
) -> ArchiveResult:
    """Move every job that became terminal before `cut` from the live log file to the
    archive file `target` (created if missing; appended to otherwise)."""
    if cut.tzinfo is None:
        raise InvalidInput("before", "must be timezone-aware")
    live, target_path = os.fspath(live_path), os.fspath(target)
    if not os.path.exists(live):
        raise InvalidInput("db", f"no such file: {live}")
    if os.path.abspath(target_path) == os.path.abspath(live):
        raise InvalidInput("to", "the archive must be another file than the live log")
    conn = _open(live)
    try:
        return _archive(conn, target_path, cut, now)
    except sqlite3.Error as error:
        raise translate(error) from error
    finally:
        conn.close()


def _archive(
    conn: sqlite3.Connection, target_path: str, cut: datetime, now: datetime
) -> ArchiveResult:
    try:
        conn.execute("BEGIN IMMEDIATE")  # no writer may extend a chain while we cut
    except sqlite3.Error as error:
        raise StorageError(f"cannot lock the live log: {error}") from error
    try:
        fold_heads(conn)  # heads exact at the end: the events after them may be moved
        catch_up_in(conn)  # cut from the projection as of the end of the log
        jobs = [decode_job(row[0]) for row in conn.execute(Q["all_jobs"])]
        moved = finished_before(jobs, cut)
        if not moved:
            conn.execute("ROLLBACK")
            return ArchiveResult(jobs=0, events=0, archive=target_path)
        plan = plan_cut(_items(conn), moved)
        # The archive commits first: a crash before the live commit leaves copies, never
        # losses (copying again is harmless).
        write_archive(target_path, plan, moved.values())
        archive_count, digest = fingerprint(target_path)
        moved_seqs, live_anchors, head = plan.moved_seqs, plan.live_anchors, plan.head
        for tenant_id, job_id in moved:
            conn.execute(Q["delete_job_events"], (tenant_id, job_id))
            conn.execute(Q["delete_job"], (tenant_id, job_id))
            conn.execute(Q["delete_edges_of_child"], (tenant_id, job_id))
        recount_jobs(conn)
        conn.execute(Q["delete_anchors"])
        conn.executemany(Q["insert_anchor"], live_anchors)
        conn.executemany(Q["insert_archived_range"], runs(moved_seqs))
        cut_row = (
            to_micros(now),
            to_micros(cut),
            os.path.basename(target_path),
            len(moved),
            len(moved_seqs),
            head,
            archive_count,
            digest,
        )
        conn.execute(Q["insert_archive_cut"], cut_row)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    record_cut(target_path, cut_row)
    return ArchiveResult(jobs=len(moved), events=len(moved_seqs), archive=target_path)


def write_archive(target_path: str, plan: Plan, jobs: Iterable[JobInfo]) -> None:
    """Add a cut's events, anchors and final job states to the archive file (created if
    missing), in one transaction."""
    with _transaction(target_path) as target:
        target.executemany(Q["insert_event_row"], plan.rows)
        target.executemany(Q["insert_anchor"], plan.archive_anchors)
        target.executemany(
            "INSERT OR REPLACE" + Q["insert_job"].removeprefix("INSERT"),
            (_archived_row(job) for job in jobs),
        )


def forget_jobs(target_path: str, jobs: Iterable[JobKey], plan: Plan) -> None:
    """Remove from the archive file the events and states of `jobs` (copied by a cut
    that then found them live again) and add the anchors `plan`, the cut without them,
    needs."""
    with _transaction(target_path) as target:
        for tenant_id, job_id in jobs:
            target.execute(Q["delete_job_events"], (tenant_id, job_id))
            target.execute(Q["delete_job"], (tenant_id, job_id))
        target.executemany(Q["insert_anchor"], plan.archive_anchors)


@contextlib.contextmanager
def _transaction(target_path: str) -> Iterator[sqlite3.Connection]:
    """The archive file, in one transaction committed (with its job counts recounted)
    when the block ends, rolled back if it raises."""
    target = _open(target_path)
    try:
        target.execute("BEGIN IMMEDIATE")
        yield target
        recount_jobs(target)
        # An archive's rows are written with its events: they cover all of them.
        end = target.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        target.execute(Q["set_checkpoint_position"], (end,))
        target.execute("COMMIT")
    except sqlite3.Error as error:
        raise translate(error) from error
    finally:
        if target.in_transaction:
            target.execute("ROLLBACK")
        target.close()


def record_cut(target_path: str, cut_row: tuple[object, ...]) -> None:
    """Record in the archive file the cut its live log recorded (`insert_archive_cut`'s
    columns)."""
    archive = _open(target_path)
    try:
        archive.execute(Q["insert_archive_cut"], cut_row)
    except sqlite3.Error as error:
        raise translate(error) from error
    finally:
        archive.close()


def _items(live: sqlite3.Connection) -> Iterator[Item]:
    """The live log's events and anchors, merged in log order."""
    anchors = [(int(s), str(t), bytes(h)) for s, t, h in live.execute(Q["archive_anchors"])]
    index = 0
    for row in live.execute(Q["archive_records"]):
        seq, tenant_id, job_id, digest = int(row[0]), str(row[1]), str(row[2]), row[6]
        while index < len(anchors) and anchors[index][0] < seq:
            yield Item(*anchors[index][:2], "", (), anchors[index][2], True)
            index += 1
        if digest is None:
            raise StorageError(f"event {seq} has no chain hash; run `dogqueue verify`")
        yield Item(seq, tenant_id, job_id, tuple(row), bytes(digest), False)
    for anchor in anchors[index:]:
        yield Item(*anchor[:2], "", (), anchor[2], True)


def _archived_row(job: JobInfo) -> tuple[object, ...]:
    """A job row for the archive. Its idempotency key column stays empty: keys are
    released by archival, so two archived jobs may have held the same one."""
    row = list(job_row(job))
    row[9] = None
    return tuple(row)


def fingerprint(target_path: str) -> tuple[int, bytes]:
    """The archive file's event count and the digest of its positions and hashes."""
    archive = _open(target_path)
    try:
        rows = [(int(seq), bytes(h)) for seq, h in archive.execute(Q["seq_hashes"])]
    finally:
        archive.close()
    return len(rows), seq_hash_digest(rows)
