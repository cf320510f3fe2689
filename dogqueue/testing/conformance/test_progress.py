"""A heartbeat can carry the job's progress: recorded in the log, shown by explain; bad
progress is refused naming the field, and appends nothing."""

from __future__ import annotations

import pytest

from dogqueue import InvalidInput, QueueCtx
from dogqueue.audit.explain import explain, jobs_ahead
from dogqueue.backend.contract import Backend
from dogqueue.core.events import Heartbeat

from .helpers import log_size, message

ACME = QueueCtx("acme")


async def test_progress_is_recorded_and_explained(backend: Backend) -> None:
    job_id = await backend.enqueue(ACME, message())
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    await backend.heartbeat(ACME, lease, progress=0.25, progress_message="row 250 of 1000")
    history = await backend.history(ACME, job_id)
    beat = history[-1]
    assert isinstance(beat, Heartbeat)
    assert (beat.progress, beat.progress_message) == (0.25, "row 250 of 1000")
    job = await backend.get_job(ACME, job_id)
    now = backend.clock()
    said = explain(job, history, now, jobs_ahead(job, [], now))
    assert "reported 25% done" in " ".join(said.details) and "row 250 of 1000" in str(said)


@pytest.mark.parametrize(
    ("progress", "note", "field"),
    [
        (1.5, None, "progress"),
        (-0.1, None, "progress"),
        (True, None, "progress"),
        (None, "orphan note", "progress"),
        (0.5, 7, "progress_message"),
    ],
)
async def test_bad_progress_is_refused(
    backend: Backend, progress: object, note: object, field: str
) -> None:
    await backend.enqueue(ACME, message())
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    before = await log_size(backend)
    with pytest.raises(InvalidInput) as refused:
        await backend.heartbeat(ACME, lease, progress=progress, progress_message=note)  # type: ignore[arg-type]
    assert refused.value.field == field
    assert await log_size(backend) == before
