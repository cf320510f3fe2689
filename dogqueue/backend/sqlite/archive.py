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

Archival writes, so it is SQLite's own tool (the command line calls it); the backends
never import it, and both files are read back, and verified, through `SqliteLogReader`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from dogqueue.backend.kit.rows import job_row, to_micros
from dogqueue.backend.sqlite.catchup import catch_up_in
from dogqueue.backend.sqlite.connection import connect, migrate, translate
from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import recount_jobs
from dogqueue.core.codec import decode_job
from dogqueue.core.cron import schedule_name_of_key
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.log.chain import seq_hash_digest


@dataclass(frozen=True)
class ArchiveResult:
    """What one archival moved."""

    jobs: int
    events: int
    archive: str


class _Item(NamedTuple):
    seq: int
    hash: bytes
    kind: str  # "keep", "move" or "anchor"


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
        catch_up_in(conn)  # cut from the projection as of the end of the log
        jobs = [decode_job(row[0]) for row in conn.execute(Q["all_jobs"])]
        newest_ticks = _newest_ticks(jobs)
        moved = {
            (job.tenant_id, job.job_id): job
            for job in jobs
            if job.status.is_terminal
            and job.finished_at is not None
            and job.finished_at < cut
            and (job.tenant_id, job.job_id) not in newest_ticks
        }
        if not moved:
            conn.execute("ROLLBACK")
            return ArchiveResult(jobs=0, events=0, archive=target_path)
        archive = _open(target_path)
        try:
            moved_seqs, live_anchors, head = _copy(conn, archive, moved)
            archive_count, digest = _fingerprint(archive)
        finally:
            archive.close()
        for tenant_id, job_id in moved:
            conn.execute(Q["delete_job_events"], (tenant_id, job_id))
            conn.execute(Q["delete_job"], (tenant_id, job_id))
            conn.execute(Q["delete_edges_of_child"], (tenant_id, job_id))
        recount_jobs(conn)
        conn.execute(Q["delete_anchors"])
        conn.executemany(Q["insert_anchor"], live_anchors)
        conn.executemany(Q["insert_archived_range"], _runs(moved_seqs))
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
    archive = _open(target_path)
    try:
        archive.execute(Q["insert_archive_cut"], cut_row)
    finally:
        archive.close()
    return ArchiveResult(jobs=len(moved), events=len(moved_seqs), archive=target_path)


def _newest_ticks(jobs: list[JobInfo]) -> set[JobKey]:
    """The job of each schedule's newest tick, per tenant: it stays in the live log, so
    that its key keeps the ticks before it (within `catch_up`) from being enqueued again."""
    newest: dict[tuple[str, str], tuple[str, JobKey]] = {}
    for job in jobs:
        key = job.message.idempotency_key
        name = schedule_name_of_key(key)
        if name is None or key is None:
            continue
        kept = newest.get((job.tenant_id, name))
        if kept is None or key > kept[0]:
            newest[(job.tenant_id, name)] = (key, (job.tenant_id, job.job_id))
    return {job for _, job in newest.values()}


def _copy(
    live: sqlite3.Connection, target: sqlite3.Connection, moved: dict[JobKey, JobInfo]
) -> tuple[list[int], list[tuple[int, str, bytes]], bytes]:
    """Copy the moved jobs' events, states and anchors into the archive (committed there
    first: a crash before the live commit leaves copies, never losses; copying again is
    harmless). Return the moved seqs, the live log's new anchors and the last moved hash."""
    last: dict[str, _Item] = {}
    moved_seqs: list[int] = []
    live_anchors: dict[int, tuple[str, bytes]] = {}
    head = b""
    target.execute("BEGIN IMMEDIATE")
    try:
        for seq, tenant_id, job_id, row, digest, is_anchor in _items(live):
            if is_anchor:
                last[tenant_id] = _Item(seq, digest, "anchor")
                continue
            previous = last.get(tenant_id)
            if (tenant_id, job_id) in moved:
                target.execute(Q["insert_event_row"], row)
                if previous is not None and previous.kind != "move":
                    target.execute(Q["insert_anchor"], (previous.seq, tenant_id, previous.hash))
                moved_seqs.append(seq)
                head = digest
                last[tenant_id] = _Item(seq, digest, "move")
            else:
                if previous is not None and previous.kind != "keep":
                    live_anchors[previous.seq] = (tenant_id, previous.hash)
                last[tenant_id] = _Item(seq, digest, "keep")
        for tenant_id, item in last.items():
            if item.kind != "keep":  # the tenant's head moved: its next event links to it
                live_anchors[item.seq] = (tenant_id, item.hash)
        target.executemany(
            "INSERT OR REPLACE" + Q["insert_job"].removeprefix("INSERT"),
            (_archived_row(job) for job in moved.values()),
        )
        recount_jobs(target)
        # An archive's rows are written with its events: they cover all of them.
        end = target.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        target.execute(Q["set_checkpoint_position"], (end,))
        target.execute("COMMIT")
    except BaseException:
        if target.in_transaction:
            target.execute("ROLLBACK")
        raise
    anchors = [(seq, tenant, digest) for seq, (tenant, digest) in sorted(live_anchors.items())]
    return moved_seqs, anchors, head


def _items(
    live: sqlite3.Connection,
) -> Iterator[tuple[int, str, str, tuple[object, ...], bytes, bool]]:
    """The live log's events and anchors, merged in log order."""
    anchors = [(int(s), str(t), bytes(h)) for s, t, h in live.execute(Q["archive_anchors"])]
    index = 0
    for row in live.execute(Q["archive_records"]):
        seq, tenant_id, job_id, digest = int(row[0]), str(row[1]), str(row[2]), row[6]
        while index < len(anchors) and anchors[index][0] < seq:
            yield *anchors[index][:2], "", (), anchors[index][2], True
            index += 1
        if digest is None:
            raise StorageError(f"event {seq} has no chain hash; run `dogqueue verify`")
        yield seq, tenant_id, job_id, tuple(row), bytes(digest), False
    for anchor in anchors[index:]:
        yield *anchor[:2], "", (), anchor[2], True


def _archived_row(job: JobInfo) -> tuple[object, ...]:
    """A job row for the archive. Its idempotency key column stays empty: keys are
    released by archival, so two archived jobs may have held the same one."""
    row = list(job_row(job))
    row[9] = None
    return tuple(row)


def _fingerprint(archive: sqlite3.Connection) -> tuple[int, bytes]:
    rows = [(int(seq), bytes(h)) for seq, h in archive.execute(Q["seq_hashes"])]
    return len(rows), seq_hash_digest(rows)


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted positions, as inclusive ranges."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
