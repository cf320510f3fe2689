"""Archival keeps each schedule's newest tick job in the live log: its idempotency key is
what keeps `enqueue_due` from enqueueing that tick, and the ones before it within
`catch_up`, a second time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dogqueue import Completion, FakeClock, QueueAdapter, Schedule, enqueue_due
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.archive import archive_before
from dogqueue.testing.conformance.test_schedules import ACME, T0, Report


def _schedule(name: str) -> Schedule:
    return Schedule(name, "*/15 * * * *", Report(), tenant="acme", catch_up=3)


async def _run_ticks(path: Path, clock: FakeClock) -> list[str]:
    """Two schedules, three ticks each, every tick job completed as it comes."""
    async with SqliteBackend(path, clock=clock) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(Report)
        ids: list[str] = []
        for tick in range(3):
            if tick:
                clock.advance(timedelta(minutes=15))
            ids += await enqueue_due(adapter, [_schedule("q"), _schedule("r")])
            leases = await backend.dequeue_many(ACME, ["default"], 10)
            await backend.settle_many(ACME, [Completion(lease=lease) for lease in leases])
        return ids


async def test_archival_keeps_each_schedules_newest_tick(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    clock = FakeClock(T0)
    ids = await _run_ticks(path, clock)
    assert len(ids) == 6
    clock.advance(timedelta(minutes=1))  # T0 + 31 min: the ticks of :00, :15, :30 ran
    result = archive_before(path, tmp_path / "archive.db", clock(), clock())
    assert result.jobs == 4  # the two older ticks of each schedule
    async with SqliteBackend(path, clock=clock) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(Report)
        kept = await backend.projected_jobs()
        keys = sorted(str(job.message.idempotency_key) for job in kept.values())
        assert keys == [
            "dogqueue.cron:q@2030-01-01T00:30Z",
            "dogqueue.cron:r@2030-01-01T00:30Z",
        ]
        # No tick comes back: the newest key still says where each schedule is.
        assert await enqueue_due(adapter, [_schedule("q"), _schedule("r")]) == []
        clock.advance(timedelta(minutes=14))  # the :45 tick is the next one
        assert len(await enqueue_due(adapter, [_schedule("q"), _schedule("r")])) == 2
