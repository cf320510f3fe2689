"""Bad input: a typed InvalidInput naming the field, and nothing appended."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from dogqueue import InvalidInput, JobMessage, QueueConfig, QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.testing.conformance.fixtures import MakeBackend

from .helpers import log_size, message

CTX = QueueCtx("tenant-a")
LIMIT = 1_000
Call = Callable[[Backend], Awaitable[Any]]


def enqueue_with(**changes: Any) -> Call:
    return lambda b: b.enqueue(CTX, msgspec.structs.replace(message(), **changes))


BAD_CALLS: list[tuple[str, str, Call]] = [
    ("empty tenant", "tenant_id", lambda b: b.enqueue(QueueCtx(""), message())),
    ("long tenant", "tenant_id", lambda b: b.enqueue(QueueCtx("t" * 257), message())),
    ("control tenant", "tenant_id", lambda b: b.enqueue(QueueCtx("a\x00b"), message())),
    ("tenant not str", "tenant_id", lambda b: b.enqueue(QueueCtx(7), message())),  # type: ignore[arg-type]
    ("empty queue", "queue", enqueue_with(queue="")),
    ("long queue", "queue", enqueue_with(queue="q" * 257)),
    ("control queue", "queue", enqueue_with(queue="q\x85")),
    ("empty job type", "job_type", enqueue_with(job_type="")),
    ("empty key", "idempotency_key", enqueue_with(idempotency_key="")),
    ("long key", "idempotency_key", enqueue_with(idempotency_key="k" * 257)),
    ("control key", "idempotency_key", enqueue_with(idempotency_key="k\n")),
    ("big payload", "payload_bytes", enqueue_with(payload_bytes=b"x" * (LIMIT + 1))),
    ("naive run_at", "run_at", enqueue_with(run_at=datetime(2030, 1, 1))),
    ("negative retries", "max_retries", enqueue_with(max_retries=-1)),
    ("too many retries", "max_retries", enqueue_with(max_retries=1001)),
    ("bool retries", "max_retries", enqueue_with(max_retries=True)),
    ("int priority", "priority", enqueue_with(priority=1)),
    (
        "zero lease",
        "lease_duration",
        lambda b: b.dequeue(CTX, ["default"], lease_duration=timedelta(0)),
    ),
    (
        "negative lease",
        "lease_duration",
        lambda b: b.dequeue(CTX, ["default"], lease_duration=timedelta(seconds=-1)),
    ),
    ("no queues", "queues", lambda b: b.dequeue(CTX, [])),
    ("bare string queues", "queues", lambda b: b.dequeue(CTX, "default")),
    ("bad queue in list", "queue", lambda b: b.dequeue(CTX, ["ok", ""])),
    (
        "key twice in a batch",
        "idempotency_key",
        lambda b: b.enqueue_many(
            CTX, [message(idempotency_key="k"), message(), message(idempotency_key="k")]
        ),
    ),
    ("not a message", "message", lambda b: b.enqueue(CTX, {"job_type": "x"})),  # type: ignore[arg-type]
    ("not a ctx", "ctx", lambda b: b.enqueue("tenant-a", message())),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("case", "field", "call"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
async def test_bad_input_is_refused_naming_the_field(
    make_backend: MakeBackend, case: str, field: str, call: Call
) -> None:
    async with make_backend(config=QueueConfig(max_payload_bytes=LIMIT)) as backend:
        await backend.enqueue(CTX, message())
        before = await log_size(backend)
        with pytest.raises(InvalidInput) as raised:
            await call(backend)
        assert raised.value.field == field
        assert isinstance(raised.value, ValueError)
        assert await log_size(backend) == before


async def test_limits_are_inclusive(make_backend: MakeBackend) -> None:
    async with make_backend(config=QueueConfig(max_payload_bytes=LIMIT)) as backend:
        edge = JobMessage(
            job_type="j" * 256,
            payload_bytes=b"x" * LIMIT,
            queue="é" * 256,  # 256 characters, 512 bytes in UTF-8
            max_retries=1000,
            idempotency_key="k" * 256,
        )
        job_id = await backend.enqueue(QueueCtx("t" * 256), edge)
        info = await backend.get_job(QueueCtx("t" * 256), job_id)
        assert info.message.payload_bytes == edge.payload_bytes
        assert info.message.queue == edge.queue


async def test_bad_lease_duration_on_heartbeat(backend: Backend) -> None:
    await backend.enqueue(CTX, message())
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    with pytest.raises(InvalidInput) as raised:
        await backend.heartbeat(CTX, lease, lease_duration=timedelta(0))
    assert raised.value.field == "lease_duration"


def test_config_rejects_nonsense() -> None:
    with pytest.raises(InvalidInput) as raised:
        QueueConfig(default_lease_duration=timedelta(0))
    assert raised.value.field == "default_lease_duration"
    with pytest.raises(InvalidInput):
        QueueConfig(max_payload_bytes=-1)
