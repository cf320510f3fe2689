"""Hostile input: lone surrogates, run_at values and zones that cannot be converted to
UTC, huge lease durations and unencodable error text are refused with InvalidInput
naming the field (ids: JobNotFound), or stored safely, and append nothing unwanted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import msgspec
import pytest

from dogqueue import InvalidInput, JobNotFound, JobStatus, QueueConfig, QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.core.config import MAX_LEASE_DURATION, MAX_RETRY_BACKOFF
from dogqueue.core.job import LeasedJob
from dogqueue.testing.conformance.fixtures import MakeBackend

from .helpers import log_size, message

CTX = QueueCtx("tenant-a")
SURROGATE = "x\udcff"
Call = Callable[[Backend], Awaitable[Any]]


class _BrokenZone(tzinfo):
    """A zone whose offset is whatever it was built with, valid or not."""

    def __init__(self, offset: object) -> None:
        self.offset = offset

    def utcoffset(self, dt: datetime | None) -> Any:
        return self.offset

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "broken"


def enqueue_with(**changes: Any) -> Call:
    return lambda b: b.enqueue(CTX, msgspec.structs.replace(message(), **changes))


BAD_CALLS: list[tuple[str, str, Call]] = [
    ("surrogate tenant", "tenant_id", lambda b: b.enqueue(QueueCtx(SURROGATE), message())),
    ("surrogate queue", "queue", enqueue_with(queue=SURROGATE)),
    ("surrogate key", "idempotency_key", enqueue_with(idempotency_key=SURROGATE)),
    ("surrogate job type", "job_type", enqueue_with(job_type=SURROGATE)),
    ("surrogate codec", "codec", enqueue_with(codec=SURROGATE)),
    ("surrogate dequeue queue", "queue", lambda b: b.dequeue(CTX, [SURROGATE])),
    (
        "surrogate tenant in a batch",
        "tenant_id",
        lambda b: b.enqueue_many(QueueCtx(SURROGATE), [message()]),
    ),
    (
        "surrogate next_run_at tenant",
        "tenant_id",
        lambda b: b.next_run_at(["default"], [SURROGATE]),
    ),
    (
        "surrogate trace context",
        "trace_context",
        lambda b: b.enqueue(CTX, message(), trace_context={"traceparent": SURROGATE}),
    ),
    (
        "trace context value not a str",
        "trace_context",
        lambda b: b.enqueue(CTX, message(), trace_context={"traceparent": 5}),  # type: ignore[dict-item]
    ),
    (
        "run_at year 1 at +05:00",
        "run_at",
        enqueue_with(run_at=datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=5)))),
    ),
    (
        "run_at year 9999 at -05:00",
        "run_at",
        enqueue_with(run_at=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))),
    ),
    (
        "run_at zone of 24 h",
        "run_at",
        enqueue_with(run_at=datetime(2030, 1, 1, tzinfo=_BrokenZone(timedelta(hours=24)))),
    ),
    (
        "run_at zone offset not a timedelta",
        "run_at",
        enqueue_with(run_at=datetime(2030, 1, 1, tzinfo=_BrokenZone("+05:00"))),
    ),
    (
        "dequeue lease of timedelta.max",
        "lease_duration",
        lambda b: b.dequeue(CTX, ["default"], lease_duration=timedelta.max),
    ),
    (
        "dequeue lease just above the bound",
        "lease_duration",
        lambda b: b.dequeue_many(
            CTX, ["default"], 2, lease_duration=MAX_LEASE_DURATION + timedelta(microseconds=1)
        ),
    ),
]


@pytest.mark.parametrize(("case", "field", "call"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
async def test_hostile_input_is_refused_naming_the_field(
    backend: Backend, case: str, field: str, call: Call
) -> None:
    await backend.enqueue(CTX, message())
    before = await log_size(backend)
    with pytest.raises(InvalidInput) as raised:
        await call(backend)
    assert raised.value.field == field
    assert await log_size(backend) == before


async def test_a_surrogate_job_id_is_not_found(backend: Backend) -> None:
    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    forged = msgspec.structs.replace(lease, job_id=SURROGATE)
    before = await log_size(backend)
    calls: list[Call] = [
        lambda b: b.get_job(CTX, SURROGATE),
        lambda b: b.get_status(CTX, SURROGATE),
        lambda b: b.history(CTX, SURROGATE),
        lambda b: b.cancel_job(CTX, SURROGATE),
        lambda b: b.retry_job(CTX, SURROGATE),
        lambda b: b.heartbeat(CTX, forged),
        lambda b: b.ack_complete(CTX, forged),
        lambda b: b.ack_fail(CTX, forged, "boom"),
        lambda b: b.release(CTX, forged),
    ]
    for call in calls:
        with pytest.raises(JobNotFound):
            await call(backend)
    assert await log_size(backend) == before


async def test_the_longest_lease_is_accepted(backend: Backend) -> None:
    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"], lease_duration=MAX_LEASE_DURATION)
    assert lease is not None
    with pytest.raises(InvalidInput) as raised:
        await backend.heartbeat(CTX, lease, lease_duration=timedelta.max)
    assert raised.value.field == "lease_duration"
    extended = await backend.heartbeat(CTX, lease, lease_duration=MAX_LEASE_DURATION)
    assert extended.lease_token == lease.lease_token


def test_the_default_lease_is_bounded_too() -> None:
    with pytest.raises(InvalidInput) as raised:
        QueueConfig(default_lease_duration=timedelta.max)
    assert raised.value.field == "default_lease_duration"


async def test_run_at_in_any_valid_zone_is_stored_in_utc(backend: Backend) -> None:
    east = datetime(2030, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    job_id = await backend.enqueue(CTX, message(run_at=east))
    assert (await backend.get_job(CTX, job_id)).run_at == datetime(2030, 1, 1, tzinfo=UTC)


async def _leased(backend: Backend) -> LeasedJob:
    await backend.enqueue(CTX, message(max_retries=0))
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    return lease


@pytest.mark.parametrize("retry", [True, False])
async def test_unencodable_error_text_is_recorded_with_replacements(
    backend: Backend, retry: bool
) -> None:
    lease = await _leased(backend)
    text = "cannot open /tmp/caf\udce9.txt"
    status = await backend.ack_fail(CTX, lease, text, retry=retry)
    assert status is JobStatus.FAILED
    info = await backend.get_job(CTX, lease.job_id)
    assert info.last_error == "cannot open /tmp/caf\ufffd.txt"
    assert (await backend.history(CTX, lease.job_id))[-1].error == info.last_error  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["max_retry_backoff", "base_retry_backoff"])
def test_retry_backoff_is_bounded(name: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        QueueConfig(**{name: timedelta.max})  # type: ignore[arg-type]
    assert raised.value.field == name


async def test_the_longest_retry_backoff_is_reached_without_overflow(
    make_backend: MakeBackend,
) -> None:
    config = QueueConfig(base_retry_backoff=MAX_RETRY_BACKOFF, max_retry_backoff=MAX_RETRY_BACKOFF)
    async with make_backend(config=config) as backend:
        await backend.enqueue(CTX, message(max_retries=3))
        lease = await backend.dequeue(CTX, ["default"])
        assert lease is not None
        assert await backend.ack_fail(CTX, lease, "boom", retry=True) is JobStatus.ENQUEUED
        info = await backend.get_job(CTX, lease.job_id)
        assert info.updated_at < info.run_at <= info.updated_at + MAX_RETRY_BACKOFF
