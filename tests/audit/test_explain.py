"""Explain on every backend: each situation a job can be in, in plain words."""

from __future__ import annotations

from datetime import timedelta

from dogqueue import FakeClock, JobPriority
from dogqueue.audit.api import explain_job
from dogqueue.audit.timetravel import AsOf
from dogqueue.backend.base import EngineBackend
from tests.audit.audit_workload import ACME, GLOBEX, message, write_story


async def test_every_situation_is_explained(backend: EngineBackend, clock: FakeClock) -> None:
    ids = await write_story(backend, clock)
    text = {
        role: str(
            await explain_job(
                backend.log_reader(), GLOBEX if role == "leased" else ACME, ids[role], now=clock()
            )
        )
        for role in ids
        if role != "other_tenant"
    }

    assert "is scheduled for 2030-01-01 02:00:00" in text["scheduled"]
    assert "leased until 2030-01-01 00:20:03" in text["leased"]
    assert "with token 1, attempt 1 of 4" in text["leased"]
    assert "1 job(s) of higher priority or enqueued earlier are ahead" in text["waiting_behind"]
    assert "0 job(s) of higher priority" in text["waiting"]
    assert "failed for good" in text["retried"] and "after 2 attempt(s)" in text["retried"]
    assert "last error: lease expired" in text["retried"]
    assert "no retries were left (max_retries=1)" in text["retried"]
    assert "was canceled at 2030-01-01 00:15:03" in text["canceled"]
    assert (
        "completed at 2030-01-01 00:00:03+00:00, 3.0 s after it was enqueued" in text["completed"]
    )
    assert "ran for 2.0 s" in text["completed"]


async def test_higher_priority_jobs_count_as_ahead(
    backend: EngineBackend, clock: FakeClock
) -> None:
    low = await backend.enqueue(ACME, message(priority=JobPriority.LOW))
    for _ in range(2):
        await backend.enqueue(ACME, message(priority=JobPriority.HIGH))
    await backend.enqueue(ACME, message(queue="other", priority=JobPriority.HIGH))
    explanation = await explain_job(backend.log_reader(), ACME, low, now=clock())
    assert "2 job(s) of higher priority or enqueued earlier are ahead" in str(explanation)


async def test_an_expired_lease_and_a_past_state_are_explained(
    backend: EngineBackend, clock: FakeClock
) -> None:
    job_id = await backend.enqueue(ACME, message())
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    clock.advance(timedelta(hours=1))
    assert "the lease has run out" in str(
        await explain_job(backend.log_reader(), ACME, job_id, now=clock())
    )
    first = (await backend.history(ACME, job_id))[0]
    past = await explain_job(backend.log_reader(), ACME, job_id, as_of=AsOf(seq=first.seq))
    assert "is ready since" in past.headline and "it has not been leased yet" in past.details
