"""User-facing messages name a job by its id (and type), never by a handle's repr."""

from __future__ import annotations

import pytest

from dogqueue import (
    InvalidInput,
    JobAlreadyExists,
    JobCanceled,
    JobFailed,
    JobHandle,
    JobNotFound,
    LeaseLost,
    QueueAdapter,
    QueueCtx,
    ResultTimeout,
    job,
)
from dogqueue.backend.memory import MemoryBackend

HANDLE: JobHandle[None] = JobHandle("01a2b3c4", "broken")


def test_errors_about_a_handle_show_its_id_not_its_repr() -> None:
    assert str(JobFailed(HANDLE, "ValueError: no\n  File ...")) == (
        "job 01a2b3c4 (broken) failed: ValueError: no"
    )
    assert str(ResultTimeout(HANDLE, "leased")) == "job 01a2b3c4 (broken) is still leased"
    assert str(JobCanceled(HANDLE)) == "job 01a2b3c4 was canceled"
    assert str(JobNotFound(HANDLE)) == "job '01a2b3c4' not found"
    assert str(LeaseLost(HANDLE, "expired")) == "job '01a2b3c4': expired"
    assert "JobHandle(" not in str(JobAlreadyExists(HANDLE, "k"))


@job
async def noop() -> None:
    return None


async def test_get_result_of_an_unfinished_job_names_it_plainly() -> None:
    async with MemoryBackend() as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend, jobs=[noop])
        handle = await adapter.enqueue(QueueCtx("t"), noop())
        with pytest.raises(InvalidInput) as refused:
            await adapter.get_result(QueueCtx("t"), handle, type(None))
        assert "JobHandle(" not in str(refused.value) and handle.job_id in str(refused.value)
