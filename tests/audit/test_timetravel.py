"""Time travel on every backend: a job's or tenant's state as of a position or a time
equals the fold of the log up to there."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dogqueue import FakeClock, InvalidInput, JobNotFound, JobStatus, fold
from dogqueue.audit.api import job_as_of, tenant_as_of
from dogqueue.audit.timetravel import AsOf
from dogqueue.backend.base import EngineBackend
from tests.audit.audit_workload import ACME, message, write_story


async def test_job_as_of_each_position_follows_its_history(
    backend: EngineBackend, clock: FakeClock
) -> None:
    ids = await write_story(backend, clock)
    history = await backend.history(ACME, ids["retried"])
    statuses = []
    for event in history:
        state = await job_as_of(backend.log_reader(), ACME, ids["retried"], AsOf(seq=event.seq))
        assert state == fold(history[: history.index(event) + 1])
        statuses.append(state.status)
    assert statuses == [
        JobStatus.ENQUEUED,
        JobStatus.LEASED,
        JobStatus.ENQUEUED,
        JobStatus.LEASED,
        JobStatus.ENQUEUED,
        JobStatus.LEASED,
        JobStatus.FAILED,
    ]
    with pytest.raises(JobNotFound):
        await job_as_of(backend.log_reader(), ACME, ids["retried"], AsOf(seq=history[0].seq - 1))


async def test_job_as_of_a_time(backend: EngineBackend, clock: FakeClock) -> None:
    start = clock()
    job_id = await backend.enqueue(ACME, message())
    clock.advance(timedelta(minutes=1))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    clock.advance(timedelta(minutes=1))
    await backend.ack_complete(ACME, lease)
    at = AsOf(at=start + timedelta(seconds=90))
    assert (await job_as_of(backend.log_reader(), ACME, job_id, at)).status is JobStatus.LEASED
    assert (
        await job_as_of(backend.log_reader(), ACME, job_id, AsOf(at=start))
    ).status is JobStatus.ENQUEUED


async def test_tenant_as_of_excludes_later_jobs_and_other_tenants(
    backend: EngineBackend, clock: FakeClock
) -> None:
    ids = await write_story(backend, clock)
    enqueued = (await backend.history(ACME, ids["waiting"]))[0]
    before = await tenant_as_of(backend.log_reader(), ACME, AsOf(seq=enqueued.seq - 1))
    now = await tenant_as_of(backend.log_reader(), ACME, AsOf())
    assert ("acme", ids["waiting"]) not in before
    assert ("acme", ids["waiting"]) in now
    assert all(tenant == "acme" for tenant, _ in now)
    live = await backend.projected_jobs()
    assert now.keys() == {key for key in live if key[0] == "acme"}
    for job in now.values():
        assert job == await backend.get_job(ACME, job.job_id)


def test_as_of_parses_positions_and_times() -> None:
    assert AsOf.parse("12").seq == 12
    moment = AsOf.parse("2030-01-01T10:00:00Z").at
    assert moment is not None and moment.utcoffset() == timedelta(0)
    naive = AsOf.parse("2030-01-01 10:00").at
    assert naive is not None and naive.utcoffset() == timedelta(0)
    with pytest.raises(InvalidInput) as error:
        AsOf.parse("yesterday")
    assert error.value.field == "as_of"
