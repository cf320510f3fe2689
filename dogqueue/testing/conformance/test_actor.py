"""Operator actions name who made them: the actor given to cancel_job and retry_job is in
the event, survives the log's encoding, and a bad actor is refused with nothing appended."""

from __future__ import annotations

import pytest

from dogqueue import InvalidInput, JobStatus, QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.core.events import Canceled, Requeued

from .helpers import log_size, message

CTX = QueueCtx("tenant-a")


async def test_cancel_and_retry_record_the_actor(backend: Backend) -> None:
    job_id = await backend.enqueue(CTX, message())
    assert await backend.cancel_job(CTX, job_id, actor="web:ops") is JobStatus.CANCELED
    status = await backend.retry_job(CTX, job_id, include_canceled=True, actor="cli:alice")
    assert status is JobStatus.ENQUEUED
    *_, canceled, requeued = await backend.history(CTX, job_id)
    assert isinstance(canceled, Canceled) and canceled.actor == "web:ops"
    assert isinstance(requeued, Requeued) and requeued.actor == "cli:alice"
    logged = [event for event in await backend.read_events() if event.job_id == job_id]
    assert logged[-2:] == [canceled, requeued]


async def test_without_an_actor_the_event_names_none(backend: Backend) -> None:
    job_id = await backend.enqueue(CTX, message())
    await backend.cancel_job(CTX, job_id)
    last = (await backend.history(CTX, job_id))[-1]
    assert isinstance(last, Canceled) and last.actor is None


@pytest.mark.parametrize("actor", ["", "x" * 257, "bell\x07", 7])
async def test_a_bad_actor_is_refused_and_nothing_appended(backend: Backend, actor: object) -> None:
    job_id = await backend.enqueue(CTX, message())
    before = await log_size(backend)
    with pytest.raises(InvalidInput, match="actor"):
        await backend.cancel_job(CTX, job_id, actor=actor)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="actor"):
        await backend.retry_job(CTX, job_id, actor=actor)  # type: ignore[arg-type]
    assert await log_size(backend) == before
