"""What a caller hands to the queue: the tenant context and the job message."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from dogqueue.core.status import JobPriority


class QueueCtx(msgspec.Struct, frozen=True):
    """The tenant a call acts for; every operation is scoped to it."""

    tenant_id: str


class JobMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A job as stored in the log: its type, encoded payload and queueing options.

    `run_at=None` means "as soon as possible"; times are aware datetimes, stored in UTC.

    Workflows: `after` names jobs of the same tenant that must complete before this one
    runs (it stays WAITING until then). `after_earlier` names messages of the same
    `enqueue_many` call by their index (each before this message), for chains and
    chords created in one call; it is resolved into `after` when the job is stored.
    `on_parent_failure` says what happens when a parent ends FAILED or CANCELED: the
    job is canceled too ("cancel") or still runs once every parent has ended ("run").
    """

    job_type: str
    payload_bytes: bytes
    codec: str = "json"
    queue: str = "default"
    priority: JobPriority = JobPriority.NORMAL
    max_retries: int = 3
    run_at: datetime | None = None
    idempotency_key: str | None = None
    after: tuple[str, ...] = ()
    after_earlier: tuple[int, ...] = ()
    on_parent_failure: Literal["cancel", "run"] = "cancel"
