"""Workers' presence records: replaced per worker, read by recency, forgotten after
FORGET_AFTER, kept out of the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from dogqueue import InvalidInput
from dogqueue.backend.contract import Backend
from dogqueue.core.workers import FORGET_AFTER, WorkerPresence

from .helpers import log_size

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def presence(worker_id: str, seen: datetime, **changes: object) -> WorkerPresence:
    record = WorkerPresence(
        worker_id=worker_id,
        host="h1",
        pid=41,
        queues=("default",),
        concurrency=8,
        running=2,
        version="1.0",
        started_at=START,
        last_seen=seen,
    )
    return msgspec.structs.replace(record, **changes)


async def test_a_worker_record_is_replaced_and_read_back(backend: Backend) -> None:
    before = await log_size(backend)
    await backend.announce_worker(presence("w1", START))
    await backend.announce_worker(presence("w2", START + timedelta(seconds=1), tenants=("a",)))
    later = presence("w1", START + timedelta(seconds=10), running=5)
    await backend.announce_worker(later)
    found = await backend.read_workers(seen_since=START)
    assert [p.worker_id for p in found] == ["w1", "w2"]
    assert found[0] == later and found[1].tenants == ("a",)
    recent = await backend.read_workers(seen_since=START + timedelta(seconds=5))
    assert [p.worker_id for p in recent] == ["w1"]
    assert await log_size(backend) == before  # presence is not an event


async def test_records_not_refreshed_for_a_day_are_forgotten(backend: Backend) -> None:
    await backend.announce_worker(presence("old", START))
    await backend.announce_worker(presence("new", START + FORGET_AFTER + timedelta(seconds=1)))
    found = await backend.read_workers(seen_since=START - timedelta(days=7))
    assert [p.worker_id for p in found] == ["new"]


async def test_bad_records_are_refused_by_field(backend: Backend) -> None:
    with pytest.raises(InvalidInput) as refused:
        await backend.announce_worker(presence("", START))
    assert refused.value.field == "worker_id"
    with pytest.raises(InvalidInput) as naive:
        await backend.announce_worker(presence("w", datetime(2026, 1, 1)))
    assert naive.value.field == "last_seen"
    with pytest.raises(InvalidInput) as since:
        await backend.read_workers(seen_since=datetime(2026, 1, 1))
    assert since.value.field == "seen_since"
    assert await backend.read_workers(seen_since=START - timedelta(days=365)) == []
