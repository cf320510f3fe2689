"""Small helpers for the conformance suite."""

from __future__ import annotations

from dogqueue import JobMessage, JobPriority
from dogqueue.backend.contract import Backend


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
