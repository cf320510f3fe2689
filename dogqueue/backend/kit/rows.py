"""Jobs as table rows: times as integer microseconds since the Unix epoch (UTC), the
columns of an inserted job row, of a moved one, and rows turned into columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from dogqueue.core.codec import encode_job
from dogqueue.core.job import JobInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(when: datetime) -> int:
    """`when` (aware) as microseconds since the epoch."""
    return (when - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """An aware UTC datetime from microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def lease_micros(job: JobInfo) -> int | None:
    """The job's lease expiry in microseconds (None: not leased)."""
    return None if job.lease_expires_at is None else to_micros(job.lease_expires_at)


def job_row(job: JobInfo) -> tuple[Any, ...]:
    """A new job's row: enqueue_seq, tenant_id, job_id, status, queue, priority, job_type,
    run_at, lease_expires_at, idempotency_key, version, state."""
    message = job.message
    return (
        job.enqueue_seq,
        job.tenant_id,
        job.job_id,
        job.status.value,
        message.queue,
        int(message.priority),
        message.job_type,
        to_micros(job.run_at),
        lease_micros(job),
        message.idempotency_key,
        job.version,
        encode_job(job),
    )


def moved_row(job: JobInfo) -> tuple[Any, ...]:
    """The columns a write changes in a job's row: status, run_at, lease_expires_at,
    version, state."""
    return (
        job.status.value,
        to_micros(job.run_at),
        lease_micros(job),
        job.version,
        encode_job(job),
    )


def columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as per-column lists (for unnest() and other array parameters)."""
    # One pass per column: zip(*rows) would make an iterator per row.
    return [list(map(itemgetter(i), rows)) for i in range(width)]
