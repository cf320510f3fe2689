"""`dogqueue stats` and `dogqueue metrics` read the same rule for how long a ready job
has waited (dogqueue.core.order.ready_since): after a `released` event they agree."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.cli import main

CTX = QueueCtx("acme")


async def _released_long_ago(path: Path) -> None:
    """A job due since 2020-01-01 00:00, leased, and released an hour later."""
    clock = FakeClock(datetime(2020, 1, 1, tzinfo=UTC))
    async with SqliteBackend(path, clock=clock) as backend:
        await backend.enqueue(CTX, JobMessage(job_type="x", payload_bytes=b"{}"))
        lease = await backend.dequeue(CTX, ["default"], lease_duration=timedelta(hours=2))
        assert lease is not None
        clock.advance(timedelta(hours=1))
        await backend.release(CTX, lease)


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_stats_and_metrics_agree_on_the_oldest_ready_age(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "queue.db"
    asyncio.run(_released_long_ago(path))
    stats = _json(capsys, "stats", "--db", str(path), "--json")
    metrics = _json(capsys, "metrics", "--db", str(path), "--format", "json")
    assert isinstance(stats, dict) and isinstance(metrics, dict)
    from_stats = stats["oldest_ready_age_seconds"]
    (series,) = metrics["series"]
    from_metrics = series["oldest_ready_age_seconds"]
    released_at = datetime(2020, 1, 1, 1, tzinfo=UTC)
    expected = (datetime.now(UTC) - released_at).total_seconds()
    # Both measure from the release (not from run_at, an hour earlier); the two commands
    # ran a moment apart.
    assert abs(from_stats - from_metrics) < 60
    assert abs(from_stats - expected) < 60
