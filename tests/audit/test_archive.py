"""Archival: the live log shrinks, both files still verify, archived histories stay
readable, idempotency keys are released, and a tampered archive is caught."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dogqueue import FakeClock, JobStatus
from dogqueue.audit.checkpoint import checkpoint_of
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.archive import archive_before
from dogqueue.backend.sqlite.log import SqliteLogReader
from dogqueue.log import archive as archival
from dogqueue.log.archive import ArchiveReader, IntegrityChecker
from tests.audit.audit_workload import ACME, GLOBEX, message
from tests.audit.sync_log import SyncLog

Story = tuple[Path, dict[str, str]]
NOW = datetime(2030, 1, 2, tzinfo=UTC)
FINISHED = ("completed", "retried", "canceled")


def archive(path: Path, target: Path, cut: datetime = NOW) -> tuple[int, int]:
    result = archive_before(path, target, cut, NOW)
    return result.jobs, result.events


def assert_verifies(path: Path, target: Path) -> None:
    with SyncLog(path) as log, SyncLog(target) as archived:
        live_report = log.verify(archives=[archived])
        archive_report = archived.verify_archive(log)
    assert live_report.ok, live_report.problems
    assert archive_report.ok, archive_report.problems


def test_archive_moves_finished_jobs_and_both_files_verify(
    story_log: Story, tmp_path: Path
) -> None:
    path, ids = story_log
    target = tmp_path / "archive.db"
    with SyncLog(path) as log:
        records = log.records()
        histories = {role: log.history("acme", ids[role]) for role in FINISHED}
    finished = {ids[role] for role in FINISHED}
    moved = {r.pos for r in records if r.tenant_id == "acme" and r.job_id in finished}
    jobs, events = archive(path, target)
    assert jobs == 3
    assert events == sum(len(h) for h in histories.values())
    with SyncLog(path) as log:
        remaining = {(j.tenant_id, j.job_id) for j in log.jobs()}
        assert {r.pos for r in log.records()} == {r.pos for r in records} - moved
    assert all(("acme", ids[role]) not in remaining for role in FINISHED)
    with SyncLog(target) as archived:
        for role in FINISHED:
            assert archived.history("acme", ids[role]) == histories[role]
    assert_verifies(path, target)


def test_nothing_finished_before_the_cut_moves_nothing(story_log: Story, tmp_path: Path) -> None:
    path, _ = story_log
    assert archive(path, tmp_path / "a.db", datetime(2029, 1, 1, tzinfo=UTC)) == (0, 0)


async def test_idempotency_key_of_an_archived_job_is_released(
    story_log: Story, tmp_path: Path, clock: FakeClock
) -> None:
    path, ids = story_log
    archive(path, tmp_path / "a.db")
    async with SqliteBackend(path, clock=clock) as backend:
        again = await backend.enqueue(ACME, message(idempotency_key="order-1"))
        assert again != ids["completed"]
        assert await backend.get_status(ACME, again) is JobStatus.ENQUEUED
    assert_verifies(path, tmp_path / "a.db")


async def test_writes_after_archival_link_to_moved_heads(
    story_log: Story, tmp_path: Path, clock: FakeClock
) -> None:
    """A tenant whose last event was archived keeps extending the same chain."""
    path, ids = story_log
    async with SqliteBackend(path, clock=clock) as backend:
        await backend.cancel_job(GLOBEX, ids["leased"])  # globex's last event, to be moved
    target = tmp_path / "a.db"
    archive(path, target)
    async with SqliteBackend(path, clock=clock) as backend:
        for _ in range(3):
            await backend.enqueue(GLOBEX, message())
            await backend.enqueue(ACME, message())
    with SyncLog(path) as log:
        assert "globex" in {a.tenant_id for a in log.anchors()}
    assert_verifies(path, target)


async def test_a_checkpoint_taken_before_archival_still_verifies(
    story_log: Story, tmp_path: Path
) -> None:
    path, _ = story_log
    with SyncLog(path) as log:
        report = log.verify()
    saved = checkpoint_of(report.events, report.heads)
    archive(path, tmp_path / "a.db")
    with SyncLog(path) as log, SyncLog(tmp_path / "a.db") as archived:
        after = log.verify(saved, archives=[archived])
    assert after.ok, after.problems


async def test_two_cuts_into_one_archive_verify(
    story_log: Story, tmp_path: Path, clock: FakeClock
) -> None:
    path, ids = story_log
    target = tmp_path / "a.db"
    archive(path, target, datetime(2030, 1, 1, 0, 10, tzinfo=UTC))  # the completed job only
    async with SqliteBackend(path, clock=clock) as backend:
        await backend.cancel_job(ACME, ids["waiting"])
    clock.advance(timedelta(hours=1))
    archive(path, target)
    with SyncLog(target) as archived:
        assert archived.history("acme", ids["waiting"])
        assert archived.history("acme", ids["completed"])
    assert_verifies(path, target)


def test_an_event_removed_from_the_archive_is_caught(story_log: Story, tmp_path: Path) -> None:
    path, _ = story_log
    target = tmp_path / "a.db"
    archive(path, target)
    conn = sqlite3.connect(target)
    with conn:
        conn.execute("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)")
    conn.close()
    with SyncLog(path) as log, SyncLog(target) as archived:
        report = archived.verify_archive(log)
    assert not report.ok


def test_a_live_event_deleted_inside_an_archived_stretch_is_still_caught(
    story_log: Story, tmp_path: Path
) -> None:
    path, ids = story_log
    archive(path, tmp_path / "a.db")
    with SyncLog(path) as log:
        seq = next(r.pos for r in log.records() if r.job_id == ids["waiting"])
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
    conn.close()
    with SyncLog(path) as log, SyncLog(tmp_path / "a.db") as archived:
        assert log.verify(archives=[archived]).first_bad_seq == seq


async def test_a_reused_idempotency_key_archived_twice_keeps_both_jobs(
    story_log: Story, tmp_path: Path, clock: FakeClock
) -> None:
    path, ids = story_log
    target = tmp_path / "a.db"
    archive(path, target)
    clock.set(datetime(2030, 1, 2, 1, tzinfo=UTC))
    async with SqliteBackend(path, clock=clock) as backend:
        again = await backend.enqueue(ACME, message("receipt", idempotency_key="order-1"))
        await backend.cancel_job(ACME, again)
    archive(path, target, datetime(2030, 1, 3, tzinfo=UTC))
    with SyncLog(target) as archived:
        keys = {j.job_id for j in archived.jobs() if j.message.idempotency_key == "order-1"}
    assert keys == {ids["completed"], again}
    assert_verifies(path, target)


async def test_steady_load_with_archival_keeps_the_live_log_bounded(
    tmp_path: Path, clock: FakeClock
) -> None:
    path, target = tmp_path / "live.db", tmp_path / "archive.db"
    sizes = []
    for _ in range(6):
        async with SqliteBackend(path, clock=clock) as backend:
            for _ in range(20):
                await backend.enqueue(ACME, message())
                lease = await backend.dequeue(ACME, ["default"])
                assert lease is not None
                await backend.ack_complete(ACME, lease)
        clock.advance(timedelta(hours=1))
        with SyncLog(path) as log:
            archive_before(path, target, clock() - timedelta(minutes=30), clock())
            sizes.append(log.event_count())
    assert sizes == [0] * 6  # everything finished before each cut moved out
    with SyncLog(target) as archived:
        assert archived.event_count() == 6 * 20 * 3
    assert_verifies(path, target)


async def test_archival_is_a_capability_not_every_log_has(story_log: Story, tmp_path: Path) -> None:
    """Readers of logs that cannot archive lack the methods; asking them through
    `dogqueue.log.archive` answers "never archived", while SQLite's reader answers (and
    Redis's: tests/integration/test_redis_archive.py)."""
    path, _ = story_log
    archive(path, tmp_path / "archive.db")
    live = SqliteLogReader(path)
    try:
        assert isinstance(live, ArchiveReader) and isinstance(live, IntegrityChecker)
        assert [cut.archive for cut in await archival.archive_cuts(live)] == ["archive.db"]
        assert await archival.archived_ranges(live)
    finally:
        await live.close()
    memory = MemoryBackend().log_reader()
    assert not isinstance(memory, ArchiveReader) and not isinstance(memory, IntegrityChecker)
    assert not hasattr(memory, "anchors")
    assert await archival.archive_cuts(memory) == [] and await archival.anchors(memory) == []
    assert await archival.integrity_problems(memory) == []
