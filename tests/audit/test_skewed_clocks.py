"""Clocks that differ between processes stamp one job's events out of time order. Time
travel by time then cuts each job's history at its first event after the moment (never
folding a history with a hole), and explain never shows a negative duration."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from dogqueue import JobStatus
from dogqueue.audit.api import explain_job, jobs_at, tenant_as_of
from dogqueue.audit.timetravel import AsOf, events_as_of
from dogqueue.backend.contract import Backend
from dogqueue.testing.conformance.fixtures import MakeBackend
from tests.audit.audit_workload import ACME, message

#: A negative number where explain shows a span ("ran for -59.0 s", "(-4.0 min ago)").
NEGATIVE = re.compile(r"[ (]-\d")


class SkewedClocks:
    """The clock of whichever process writes next: set to any time, earlier or later."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> SkewedClocks:
    return SkewedClocks()


@pytest.fixture
async def skewed(make_backend: MakeBackend, clock: SkewedClocks) -> AsyncIterator[Backend]:
    async with make_backend(clock=clock) as backend:
        yield backend


async def _skewed_story(backend: Backend, clock: SkewedClocks) -> tuple[str, str]:
    """Job `late` is enqueued at t0+10 s, leased by a worker whose clock is 5 s behind
    (t0+5 s) and acked at t0+12 s; job `ahead` is leased by a worker 60 s ahead and
    acked by one on time, so it 'ran for' a negative span by the stamps."""
    start = clock()
    clock.advance(timedelta(seconds=10))
    late = await backend.enqueue(ACME, message(run_at=start))
    clock.set(start + timedelta(seconds=5))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None and lease.job_id == late
    clock.set(start + timedelta(seconds=12))
    await backend.ack_complete(ACME, lease)
    ahead = await backend.enqueue(ACME, message(run_at=start))
    clock.set(start + timedelta(seconds=72))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None and lease.job_id == ahead
    clock.set(start + timedelta(seconds=13))
    await backend.ack_complete(ACME, lease)
    return late, ahead


async def test_as_of_a_time_never_folds_a_history_with_a_hole(
    skewed: Backend, clock: SkewedClocks
) -> None:
    backend, start = skewed, clock()
    late, ahead = await _skewed_story(backend, clock)
    log = backend.log_reader()
    # At t0+7 s only the lease (stamped t0+5 s) had a stamp before: the job did not
    # exist yet, because its enqueued event (t0+10 s) ends its prefix.
    assert await tenant_as_of(log, ACME, AsOf(at=start + timedelta(seconds=7))) == {}
    at_11 = await tenant_as_of(log, ACME, AsOf(at=start + timedelta(seconds=11)))
    assert [job.status for job in at_11.values()] == [JobStatus.LEASED]
    # `ahead`'s lease is stamped t0+72 s: as of t0+20 s it is still enqueued.
    at_20 = await jobs_at(log, ACME.tenant_id, AsOf(at=start + timedelta(seconds=20)))
    assert {job.job_id: job.status for job in at_20} == {
        late: JobStatus.COMPLETED,
        ahead: JobStatus.ENQUEUED,
    }
    # Every cut is a prefix of each job's history.
    events = await log.tenant_events(ACME.tenant_id)
    for seconds in range(0, 80):
        kept = events_as_of(events, AsOf(at=start + timedelta(seconds=seconds)))
        for job_id in (late, ahead):
            mine = [e for e in events if e.job_id == job_id]
            cut = [e for e in kept if e.job_id == job_id]
            assert cut == mine[: len(cut)]


async def test_explain_never_shows_a_negative_duration(
    skewed: Backend, clock: SkewedClocks
) -> None:
    backend, start = skewed, clock()
    _, ahead = await _skewed_story(backend, clock)
    text = str(await explain_job(backend.log_reader(), ACME, ahead, now=clock()))
    assert "ran for 0 ms" in text
    assert not NEGATIVE.search(text)
    # A leased job whose lease stamp is ahead of the explaining clock.
    job_id = await backend.enqueue(ACME, message(run_at=start))
    clock.set(start + timedelta(minutes=5))
    assert await backend.dequeue(ACME, ["default"]) is not None
    text = str(await explain_job(backend.log_reader(), ACME, job_id, now=start))
    assert "(0 ms ago)" in text
    assert not NEGATIVE.search(text)
