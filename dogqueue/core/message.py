"""What a caller hands to the queue: the tenant context and the job message."""

from __future__ import annotations

from datetime import datetime

import msgspec

from dogqueue.core.status import JobPriority


class QueueCtx(msgspec.Struct, frozen=True):
    """The tenant a call acts for; every operation is scoped to it."""

    tenant_id: str


class JobMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A job as stored in the log: its type, encoded payload and queueing options.

    `run_at=None` means "as soon as possible"; times are aware datetimes, stored in UTC.
    """

    job_type: str
    payload_bytes: bytes
    codec: str = "json"
    queue: str = "default"
    priority: JobPriority = JobPriority.NORMAL
    max_retries: int = 3
    run_at: datetime | None = None
    idempotency_key: str | None = None
