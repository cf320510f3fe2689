"""Golden logs written by earlier dogqueue versions must open, replay and verify in this
one (upgraded by the schema migrations), and keep working afterwards."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dogqueue import FakeClock, JobStatus
from dogqueue.audit.checkpoint import load_checkpoint
from dogqueue.audit.logfile import LogFile
from dogqueue.audit.replay import replay
from dogqueue.audit.verify import verify_log
from dogqueue.backend.sqlite import SqliteBackend
from tests.audit.audit_workload import ACME, GLOBEX, message

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
#: Each golden log's stem; story-v1 predates the hash chain (schema version 1).
LOGS = ["story-v1", "story-v2"]
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


def test_golden_log_replays_to_its_projection(golden: tuple[Path, dict[str, str], str]) -> None:
    path, _, _ = golden
    with LogFile(path) as log:
        result = replay(log)
    assert result.events == 18
    assert result.differing == ()


def test_golden_log_verifies(golden: tuple[Path, dict[str, str], str]) -> None:
    path, _, stem = golden
    checkpoint_file = GOLDEN / f"{stem}.checkpoint.json"
    checkpoint = load_checkpoint(checkpoint_file.read_text()) if checkpoint_file.exists() else None
    with LogFile(path) as log:
        report = verify_log(log, checkpoint=checkpoint)
    assert report.ok, report.problems


async def test_golden_log_keeps_working_after_the_upgrade(
    golden: tuple[Path, dict[str, str], str], clock: FakeClock
) -> None:
    path, ids, _ = golden
    clock.set(datetime(2030, 1, 2, tzinfo=UTC))
    async with SqliteBackend(path, clock=clock) as backend:
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None and lease.job_id == ids["waiting"]
        await backend.ack_complete(ACME, lease)
        await backend.enqueue(ACME, message(idempotency_key="order-2"))
    with LogFile(path) as log:
        report = verify_log(log)
    assert report.ok, report.problems


def test_golden_v1_log_is_hashed_on_upgrade(tmp_path: Path) -> None:
    """The chain of a log written before the chain existed equals the one this version
    would have written: story-v1 and story-v2 hold the same story."""
    copy = tmp_path / "v1.db"
    shutil.copyfile(GOLDEN / "story-v1.db", copy)
    with LogFile(copy) as log:
        assert all(record.hash is not None for record in log.records())
        assert set(log.chain_heads()) == {"acme", "globex"}
