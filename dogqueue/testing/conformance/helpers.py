"""Small helpers for the conformance suite."""

from __future__ import annotations

import pytest

from dogqueue import JobMessage, JobPriority, LeasedJob, QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.core.errors import QueueError


def message(
    job_type: str = "email.snapshot",
    *,
    payload: bytes = b"{}",
    queue: str = "default",
    priority: JobPriority = JobPriority.NORMAL,
    **options: object,
) -> JobMessage:
    """A small valid message."""
    return JobMessage(
        job_type=job_type,
        payload_bytes=payload,
        queue=queue,
        priority=priority,
        **options,  # type: ignore[arg-type]
    )


async def log_size(backend: Backend) -> int:
    """How many events the log holds."""
    return len(await backend.read_events())


async def assert_lease_refused(
    backend: Backend, ctx: QueueCtx, lease: LeasedJob, error: type[QueueError]
) -> None:
    """Every call made under `lease` (complete, fail, heartbeat, release) raises `error`,
    and none appends anything."""
    before = await log_size(backend)
    with pytest.raises(error):
        await backend.ack_complete(ctx, lease, b"1")
    with pytest.raises(error):
        await backend.ack_fail(ctx, lease, "late")
    with pytest.raises(error):
        await backend.heartbeat(ctx, lease)
    with pytest.raises(error):
        await backend.release(ctx, lease)
    assert await log_size(backend) == before
