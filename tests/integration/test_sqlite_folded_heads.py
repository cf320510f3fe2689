"""Chain heads on SQLite are folded into `chain_heads` every so many events and at
close, not written at every commit: a head is the tenant's last event after the folded
position, else its folded row. Heads read that way are exact while other connections
append, readers see them exact before any fold, a lone commit writes no head, and a file
from before the change upgrades in place and verifies."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dogqueue import Completion, FakeClock, JobMessage, QueueCtx
from dogqueue.audit.verify import verify_log
from dogqueue.backend.sqlite import SqliteBackend, transaction
from dogqueue.backend.sqlite.archive import archive_before
from dogqueue.backend.sqlite.log import SqliteLogReader
from dogqueue.backend.sqlite.queries import SCHEMA_VERSION, Q

ACME, GLOBEX = QueueCtx("acme"), QueueCtx("globex")
MESSAGE = JobMessage(job_type="t", payload_bytes=b"{}")


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


def _last_events(path: Path) -> dict[str, tuple[int, bytes]]:
    rows = _rows(
        path, "SELECT tenant_id, max(seq), hash FROM events GROUP BY tenant_id ORDER BY tenant_id"
    )
    return {str(t): (int(s), bytes(h)) for t, s, h in rows}  # type: ignore[call-overload]


def _stored(path: Path) -> tuple[int, dict[str, tuple[int, bytes]]]:
    (position,) = _rows(path, "SELECT seq FROM chain_heads_position")[0]
    rows = _rows(path, "SELECT tenant_id, seq, hash FROM chain_heads")
    return int(position), {str(t): (int(s), bytes(h)) for t, s, h in rows}  # type: ignore[call-overload]


async def _lifecycle(backend: SqliteBackend, ctx: QueueCtx) -> None:
    await backend.enqueue_many(ctx, [MESSAGE, MESSAGE])
    leases = await backend.dequeue_many(ctx, ["default"], 1)
    await backend.settle_many(ctx, [Completion(lease=lease) for lease in leases])


async def test_heads_are_folded_every_so_many_events_and_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transaction, "FOLD_EVERY", 1_000)
    path = tmp_path / "q.db"
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        for _ in range(5):
            await _lifecycle(backend, ACME)
            await _lifecycle(backend, GLOBEX)
        assert _stored(path) == (0, {})  # nothing folded yet: the heads are the events
        assert await SqliteLogReader(path).chain_heads() == _last_events(path)
        report = await verify_log(SqliteLogReader(path))
        assert report.ok, report.problems
    end = max(seq for seq, _ in _last_events(path).values())
    assert _stored(path) == (end, _last_events(path))


async def test_heads_read_from_the_log_are_exact_while_two_connections_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each writer links its tenants' next events to the heads the other's appends
    moved, whether folded (every 3 events here) or not; every chain verifies, and the
    reader's heads are each tenant's last event at every turn."""
    monkeypatch.setattr(transaction, "FOLD_EVERY", 3)
    path = tmp_path / "q.db"
    async with SqliteBackend(path) as first, SqliteBackend(path) as second:
        for turn in range(16):
            writer = (first, second)[turn % 2]
            await _lifecycle(writer, (ACME, GLOBEX)[turn // 3 % 2])
            assert await SqliteLogReader(path).chain_heads() == _last_events(path)
        position, _ = _stored(path)
        assert position > 0
    report = await verify_log(SqliteLogReader(path))
    assert report.ok, report.problems


async def test_a_head_a_rollback_moved_is_read_again_from_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a rollback the writer forgets its heads and reads them from the events
    after the folded position (none folded here)."""
    monkeypatch.setattr(transaction, "FOLD_EVERY", 1_000)
    path = tmp_path / "q.db"
    async with SqliteBackend(path) as backend:
        await _lifecycle(backend, ACME)

        def broken(tx: object, now: object) -> None:
            raise RuntimeError("broken")

        with pytest.raises(RuntimeError):
            await backend.writer.run(broken)
        await _lifecycle(backend, ACME)
    report = await verify_log(SqliteLogReader(path))
    assert report.ok, report.problems


async def test_a_log_from_before_folded_heads_upgrades_in_place_and_verifies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.db"
    async with SqliteBackend(path) as backend:
        await _lifecycle(backend, ACME)
        await _lifecycle(backend, GLOBEX)
    heads = _last_events(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE chain_heads_position")  # as schema 9 left it
    conn.execute("UPDATE schema_version SET version = 9")
    conn.commit()
    conn.close()
    reader = SqliteLogReader(path)
    assert await reader.chain_heads() == heads  # read as they are, not migrated
    assert (await verify_log(reader)).ok
    async with SqliteBackend(path) as backend:
        await _lifecycle(backend, ACME)
    assert _rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert _stored(path) == (max(s for s, _ in _last_events(path).values()), _last_events(path))
    report = await verify_log(SqliteLogReader(path))
    assert report.ok, report.problems


async def test_archival_folds_the_heads_before_it_moves_events_after_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archival may move a tenant's last event while a writer has not folded it: the
    heads are folded first, so the moved head stays the one its chain extends."""
    monkeypatch.setattr(transaction, "FOLD_EVERY", 1_000)
    path, target = tmp_path / "q.db", tmp_path / "archive.db"
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    async with SqliteBackend(path, clock=clock) as backend:
        await _lifecycle(backend, ACME)
        await _lifecycle(backend, GLOBEX)  # globex's last event: a completion, moved
        clock.advance(timedelta(minutes=1))
        assert _stored(path) == (0, {})
        assert archive_before(path, target, clock(), clock()).jobs == 2
        report = await verify_log(SqliteLogReader(path), archives=[SqliteLogReader(target)])
        assert report.ok, report.problems
        await _lifecycle(backend, GLOBEX)
    report = await verify_log(SqliteLogReader(path), archives=[SqliteLogReader(target)])
    assert report.ok, report.problems


async def test_heads_left_unfolded_by_writers_that_stopped_are_folded_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers killed before they folded leave the scan for a head growing: the next
    opening folds once more events than a writer folds at a time are unfolded."""
    monkeypatch.setattr(transaction, "FOLD_EVERY", 5)
    path = tmp_path / "q.db"
    backend = SqliteBackend(path)
    for _ in range(3):
        await _lifecycle(backend, ACME)
        backend.writer._memo.unfolded = 0  # as writers killed before folding
    await backend.close()
    assert _stored(path) == (0, {})
    async with SqliteBackend(path) as again:
        await again.open()
        assert _stored(path) == (12, _last_events(path))
    report = await verify_log(SqliteLogReader(path))
    assert report.ok, report.problems


async def test_application_transactions_fold_the_heads_once_far_enough_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An enqueue inside the application's own transaction has no writer memo: it reads
    heads from the log and folds them once more than a writer's folding interval of
    events is unfolded, so that a file only applications write still folds."""
    monkeypatch.setattr(transaction, "FOLD_EVERY", 2)
    path = tmp_path / "q.db"
    async with SqliteBackend(path) as backend:
        await backend.open()
        with closing(sqlite3.connect(path)) as conn:
            for expected in (0, 0, 3):
                await backend.enqueue_in_transaction(conn, ACME, MESSAGE)
                conn.commit()
                assert _stored(path)[0] == expected
    report = await verify_log(SqliteLogReader(path))
    assert report.ok, report.problems


async def test_a_fold_reads_only_the_events_after_the_folded_position(tmp_path: Path) -> None:
    """A fold runs every `FOLD_EVERY` events, on the event loop for a lone commit: it
    must read the rowid range after the folded position, not group the whole log's
    `events_by_job` index (9 ms at 200,000 events, growing with the log)."""
    path = tmp_path / "q.db"
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        for ctx in (ACME, GLOBEX):
            await backend.enqueue_many(ctx, [MESSAGE] * 200)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("ANALYZE")  # the planner's view of a large log
        plan = " | ".join(
            str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {Q['fold_chain_heads']}")
        )
    assert "events_by_job" not in plan, plan
    assert "rowid>?" in plan, plan
