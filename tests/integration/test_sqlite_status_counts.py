"""Schema 7 keeps each tenant's job count per status in `job_counts`, moved by every
transaction's net change. Whatever writes the job rows (units of work, batches with
refused jobs, retries, cancels, workflows, reclaimed leases, rolled-back application
transactions, rebuilds, archival), the counts equal the rows, and `dogqueue verify`
reports any difference."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dogqueue import Completion, Failure, FakeClock, JobMessage, QueueCtx
from dogqueue.audit.verify import verify_log
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.archive import archive_before
from dogqueue.backend.sqlite.log import SqliteLogReader

ACME, GLOBEX = QueueCtx("acme"), QueueCtx("globex")
START = datetime(2030, 1, 1, tzinfo=UTC)
STORED = "SELECT tenant_id, status, jobs FROM job_counts WHERE jobs != 0 ORDER BY 1, 2"
COUNTED = "SELECT tenant_id, status, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2"


def _message(**options: object) -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}", max_retries=1, **options)  # type: ignore[arg-type]


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


async def _problems(path: Path, *archives: Path) -> list[str]:
    log = SqliteLogReader(path)
    moved = [SqliteLogReader(archive) for archive in archives]
    try:
        report = await verify_log(log, archives=moved)
    finally:
        for reader in [log, *moved]:
            await reader.close()
    return [str(problem) for problem in report.problems]


async def _every_kind_of_write(path: Path, clock: FakeClock) -> None:
    async with SqliteBackend(path, clock=clock) as backend:
        parent, child_ok, child_canceled, plain = await backend.enqueue_many(
            ACME,
            [
                _message(),
                _message(after_earlier=(0,)),
                _message(after_earlier=(0,), on_parent_failure="cancel"),
                _message(),
            ],
        )
        await backend.enqueue_many(GLOBEX, [_message() for _ in range(3)])
        leases = await backend.dequeue_many(ACME, ["default"], 10)
        assert {lease.job_id for lease in leases} == {parent, plain}
        # A batch with a refused settlement (the same job twice) and a retried failure.
        by_id = {lease.job_id: lease for lease in leases}
        await backend.settle_many(
            ACME,
            [
                Completion(lease=by_id[parent]),
                Completion(lease=by_id[parent]),
                Failure(lease=by_id[plain], error="boom", retry=True),
            ],
        )
        await backend.cancel_job(ACME, child_canceled)
        # A lease that expires and is reclaimed, then a final failure.
        globex = await backend.dequeue_many(GLOBEX, ["default"], 2)
        clock.advance(timedelta(hours=1))
        assert await backend.reap_expired() == 2
        again = await backend.dequeue_many(GLOBEX, ["default"], 1)
        await backend.ack_fail(GLOBEX, again[0], "final", retry=False)
        assert globex
        # An application's transaction that enqueues, then rolls back: nothing counted.
        conn = sqlite3.connect(path)
        await backend.enqueue_in_transaction(conn, ACME, _message())
        await backend.enqueue_in_transaction(conn, ACME, _message())
        conn.rollback()
        await backend.enqueue_in_transaction(conn, ACME, _message())
        conn.commit()
        conn.close()
        ok = await backend.dequeue_many(ACME, ["default"], 10)
        await backend.settle_many(ACME, [Completion(lease=lease) for lease in ok])
        assert child_ok in {lease.job_id for lease in ok}


async def test_the_counts_equal_the_rows_after_every_kind_of_write(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    clock = FakeClock(START)
    await _every_kind_of_write(path, clock)
    stored = _rows(path, STORED)
    assert stored == _rows(path, COUNTED)
    assert {status for _, status, _ in stored} >= {"completed", "failed", "canceled", "enqueued"}
    assert await _problems(path) == []


async def test_a_rebuild_and_an_archival_count_again(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    clock = FakeClock(START)
    await _every_kind_of_write(path, clock)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE job_counts SET jobs = jobs + 7")  # drifted: rebuilt from the rows
    conn.commit()
    conn.close()
    async with SqliteBackend(path, clock=clock) as backend:
        await backend.rebuild_projections()
    assert _rows(path, STORED) == _rows(path, COUNTED)
    moved = archive_before(path, tmp_path / "archive.db", START + timedelta(days=1), START)
    assert moved.jobs > 0
    assert _rows(path, STORED) == _rows(path, COUNTED)
    assert _rows(tmp_path / "archive.db", STORED) == _rows(tmp_path / "archive.db", COUNTED)
    assert await _problems(path, tmp_path / "archive.db") == []


async def test_verify_reports_a_count_that_differs_from_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    await _every_kind_of_write(path, FakeClock(START))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE job_counts SET jobs = jobs + 1 WHERE status = 'completed'")
    conn.commit()
    conn.close()
    problems = await _problems(path)
    assert len(problems) == 1 and "completed jobs of 'acme'" in problems[0], problems
