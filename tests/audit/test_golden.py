"""Golden logs written by earlier dogqueue versions must be readable as they are (read
only: replay, history, verify), open in this one (upgraded by the schema migrations),
and keep working afterwards."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dogqueue import FakeClock, JobStatus
from dogqueue.audit.checkpoint import load_checkpoint
from dogqueue.audit.replay import replay
from dogqueue.audit.verify import Report, all_records, verify_log
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.log import SqliteLogReader
from dogqueue.core.errors import StorageError
from tests.audit.audit_workload import ACME, GLOBEX, message

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
#: Each golden log's stem; story-v1 predates the hash chain (schema version 1);
#: story-v6 predates the status counts of schema 7 (written by main at 637a4ef).
LOGS = ["story-v1", "story-v2", "story-v6"]
EXPECTED = {
    "completed": JobStatus.COMPLETED,
    "retried": JobStatus.FAILED,
    "canceled": JobStatus.CANCELED,
    "scheduled": JobStatus.ENQUEUED,
    "leased": JobStatus.LEASED,
    "waiting": JobStatus.ENQUEUED,
}


@pytest.fixture(params=LOGS)
def golden(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    """A copy of one golden log (the originals are never opened for writing)."""
    stem: str = request.param
    copy = tmp_path / f"{stem}.db"
    shutil.copyfile(GOLDEN / f"{stem}.db", copy)
    ids = json.loads((GOLDEN / f"{stem}.ids.json").read_text())
    return copy, ids, stem


async def test_golden_log_opens_with_its_jobs_intact(
    golden: tuple[Path, dict[str, str], str], clock: FakeClock
) -> None:
    path, ids, _ = golden
    async with SqliteBackend(path, clock=clock) as backend:
        for role, status in EXPECTED.items():
            assert (
                await backend.get_status(GLOBEX if role == "leased" else ACME, ids[role]) is status
            )
        history = await backend.history(ACME, ids["retried"])
        assert [e.type for e in history] == [
            "enqueued",
            "leased",
            "released",
            "leased",
            "failed",
            "leased",
            "expired",
        ]


async def _verify(path: Path, **kwargs: object) -> Report:
    log = SqliteLogReader(path)
    try:
        return await verify_log(log, **kwargs)  # type: ignore[arg-type]
    finally:
        await log.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_golden_log_is_read_as_it_is(golden: tuple[Path, dict[str, str], str]) -> None:
    """Reading never migrates or writes: the file's bytes stay the same, and the reader
    numbers tenant positions itself where the schema has none."""
    path, ids, stem = golden
    before = _digest(path)
    log = SqliteLogReader(path)
    result = await replay(log)
    assert result.events == 18
    assert result.differing == ()
    assert log.schema_version == int(stem[-1])
    records = [record async for record in all_records(log, page=5)]
    assert [r.pos for r in records] == list(range(1, 19))
    assert all((r.hash is None) == (stem == "story-v1") for r in records)
    assert await log.records(after=7, limit=3) == records[7:10]  # not from the last page
    for tenant in ("acme", "globex"):
        mine = [r.tpos for r in records if r.tenant_id == tenant]
        assert mine == list(range(1, len(mine) + 1))
        events = await log.tenant_events(tenant)
        assert [e.seq for e in events] == mine
    history = await log.history("acme", ids["retried"])
    assert [e.seq for e in history] == [r.tpos for r in records if r.job_id == ids["retried"]]
    jobs = await log.jobs("acme")
    assert [job.enqueue_seq for job in jobs] == sorted(job.enqueue_seq for job in jobs)
    await log.close()
    assert _digest(path) == before


async def test_golden_log_verifies(golden: tuple[Path, dict[str, str], str]) -> None:
    path, _, stem = golden
    checkpoint_file = GOLDEN / f"{stem}.checkpoint.json"
    checkpoint = load_checkpoint(checkpoint_file.read_text()) if checkpoint_file.exists() else None
    report = await _verify(path, checkpoint=checkpoint)
    if stem == "story-v1":  # before the chain: read as it is, it cannot be verified
        assert report.unchained and [p.seq for p in report.problems] == [1]
        assert "predates the hash chain" in report.problems[0].what
        async with SqliteBackend(path):  # the upgrade hashes it
            pass
        report = await _verify(path, checkpoint=checkpoint)
    assert report.ok, report.problems


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "future.db"
    shutil.copyfile(GOLDEN / "story-v2.db", copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    conn.close()
    with pytest.raises(StorageError, match="schema version 999 is newer"):
        await SqliteLogReader(copy).records()


async def test_golden_log_keeps_working_after_the_upgrade(
    golden: tuple[Path, dict[str, str], str], clock: FakeClock
) -> None:
    path, ids, _ = golden
    clock.set(datetime(2030, 1, 2, tzinfo=UTC))
    async with SqliteBackend(path, clock=clock) as backend:
        history = await backend.history(ACME, ids["retried"])
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None and lease.job_id == ids["waiting"]
        await backend.ack_complete(ACME, lease)
        await backend.enqueue(ACME, message(idempotency_key="order-2"))
        # Tenant positions continue from the backfilled ones.
        assert [e.seq for e in await backend.history(ACME, ids["retried"])] == [
            e.seq for e in history
        ]
        acme = await backend.log_reader().tenant_events("acme")
        assert [e.seq for e in acme] == list(range(1, len(acme) + 1))
    report = await _verify(path)
    assert report.ok, report.problems


async def test_golden_v1_log_is_hashed_on_upgrade(tmp_path: Path) -> None:
    """The chain of a log written before the chain existed equals the one this version
    would have written: story-v1 and story-v2 hold the same story."""
    copy = tmp_path / "v1.db"
    shutil.copyfile(GOLDEN / "story-v1.db", copy)
    async with SqliteBackend(copy):
        pass
    log = SqliteLogReader(copy)
    records = await log.records()
    assert all(record.hash is not None for record in records)
    assert set(await log.chain_heads()) == {"acme", "globex"}
    await log.close()
    shutil.copyfile(GOLDEN / "story-v2.db", tmp_path / "v2.db")
    v2 = SqliteLogReader(tmp_path / "v2.db")
    v2_records = await v2.records()
    await v2.close()
    assert [(r.tenant_id, r.tpos) for r in records] == [(r.tenant_id, r.tpos) for r in v2_records]
