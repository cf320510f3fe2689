"""One table of bad enqueue input, fed to every enqueue path of the contract: each path
refuses each row with the same InvalidInput naming the same field, and appends nothing
(one prepare-enqueue path does every check). The built-in backends' transactional
enqueue gets the same table in the project's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from dogqueue import FakeClock, InvalidInput, JobMessage, QueueConfig, QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.core.cron import ScheduleSpec
from dogqueue.testing.conformance.fixtures import MakeBackend

from .helpers import log_size, message

ACME = QueueCtx("acme")
#: The payload limit of the backends these tests open.
PAYLOAD_LIMIT = 1024

#: (what is wrong, the message's changed fields, the field the error names). Some
#: fields hold a value of the wrong type, as an untyped caller could pass.
BAD_MESSAGES: list[tuple[str, dict[str, Any], str]] = [
    ("empty job type", {"job_type": ""}, "job_type"),
    ("payload not bytes", {"payload_bytes": "{}"}, "payload_bytes"),
    ("payload over the limit", {"payload_bytes": b"x" * (PAYLOAD_LIMIT + 1)}, "payload_bytes"),
    ("control character in the codec", {"codec": "js\x00on"}, "codec"),
    ("empty queue", {"queue": ""}, "queue"),
    ("priority out of range", {"priority": 99}, "priority"),
    ("negative max_retries", {"max_retries": -1}, "max_retries"),
    ("naive run_at", {"run_at": datetime(2030, 1, 1)}, "run_at"),
    ("empty idempotency key", {"idempotency_key": ""}, "idempotency_key"),
    ("after not a tuple", {"after": "job"}, "after"),
    ("after names a job twice", {"after": ("a", "a")}, "after"),
    ("after names no job", {"after": ("no-such-job",)}, "after"),
    ("after_earlier past the batch", {"after_earlier": (5,)}, "after_earlier"),
    ("after_earlier negative", {"after_earlier": (-1,)}, "after_earlier"),
    ("unknown parent policy", {"on_parent_failure": "ignore"}, "on_parent_failure"),
]
#: A tick sets these itself, so a schedule's message never reaches storage with them.
SET_BY_THE_TICK = {"run_at", "idempotency_key"}


def bad_message(changes: dict[str, Any]) -> JobMessage:
    """A valid message with `changes` made (bypassing the struct's own checks)."""
    return msgspec.structs.replace(message("bad"), **changes)


Path = Callable[[Backend, QueueCtx, JobMessage, datetime], Awaitable[object]]


async def _enqueue(backend: Backend, ctx: QueueCtx, bad: JobMessage, now: datetime) -> object:
    return await backend.enqueue(ctx, bad)


async def _enqueue_many(backend: Backend, ctx: QueueCtx, bad: JobMessage, now: datetime) -> object:
    return await backend.enqueue_many(ctx, [message("good"), bad])


async def _workflow(backend: Backend, ctx: QueueCtx, bad: JobMessage, now: datetime) -> object:
    # A chain's later step: it names the step before it (unless the row is about that).
    step = bad if bad.after_earlier else msgspec.structs.replace(bad, after_earlier=(0,))
    return await backend.enqueue_many(ctx, [message("first"), step])


async def _schedule_tick(backend: Backend, ctx: QueueCtx, bad: JobMessage, now: datetime) -> object:
    spec = ScheduleSpec(name="nightly", cron="* * * * *", timezone="UTC", catch_up=1, message=bad)
    return await backend.enqueue_ticks(ctx, spec, now + timedelta(minutes=1))


PATHS: dict[str, Path] = {
    "enqueue": _enqueue,
    "enqueue_many": _enqueue_many,
    "workflow": _workflow,
    "schedule_tick": _schedule_tick,
}


@pytest_asyncio.fixture
async def small_backend(make_backend: MakeBackend) -> AsyncIterator[Backend]:
    """An open backend with a payload limit of PAYLOAD_LIMIT bytes."""
    async with make_backend(config=QueueConfig(max_payload_bytes=PAYLOAD_LIMIT)) as opened:
        yield opened


@pytest.mark.parametrize("path", list(PATHS))
async def test_every_enqueue_path_refuses_each_bad_message_alike(
    small_backend: Backend, clock: FakeClock, path: str
) -> None:
    backend = small_backend
    await backend.enqueue(ACME, message("already-there"))
    before, jobs = await log_size(backend), await backend.projected_jobs()
    for what, changes, field in BAD_MESSAGES:
        if path == "schedule_tick" and field in SET_BY_THE_TICK:
            continue
        with pytest.raises(InvalidInput) as raised:
            await PATHS[path](backend, ACME, bad_message(changes), clock())
        assert raised.value.field == field, f"{path}, {what}: {raised.value!r}"
        assert await log_size(backend) == before, f"{path}, {what}: appended"
        assert await backend.projected_jobs() == jobs, f"{path}, {what}: changed a job"


@pytest.mark.parametrize("path", list(PATHS))
async def test_every_enqueue_path_refuses_a_bad_tenant_alike(
    backend: Backend, clock: FakeClock, path: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await PATHS[path](backend, QueueCtx(""), message(), clock())
    assert raised.value.field == "tenant_id"
    assert await log_size(backend) == 0


async def test_a_tick_may_wait_for_a_parent(backend: Backend, clock: FakeClock) -> None:
    """A schedule's message may name parents (the tick's unit of work reads them)."""
    parent = await backend.enqueue(ACME, message("parent"))
    spec = ScheduleSpec(
        name="after-parent",
        cron="* * * * *",
        timezone="UTC",
        catch_up=1,
        message=message("child", after=(parent,)),
    )
    (child,) = await backend.enqueue_ticks(ACME, spec, clock() + timedelta(minutes=1))
    assert (await backend.get_job(ACME, child)).message.after == (parent,)
