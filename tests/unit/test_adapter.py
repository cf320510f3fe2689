"""Typed jobs: registration, enqueue through the adapter, execution through the registry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dogqueue import (
    FakeClock,
    InvalidInput,
    InvalidJobType,
    Job,
    JobError,
    JobMessage,
    JobPriority,
    QueueAdapter,
    QueueConfig,
    QueueCtx,
)
from dogqueue.backend.memory import MemoryBackend

CTX = QueueCtx("acme")


class Greeting(Job[str, str]):
    JOB_TYPE = "greeting"
    PRIORITY = JobPriority.HIGH
    MAX_RETRIES = 7
    name: str

    async def execute(self, ctx: str) -> str:
        return f"{ctx}, {self.name}"


class Silent(Job[str, None]):
    JOB_TYPE = "silent"

    async def execute(self, ctx: str) -> None:
        return None


class Impostor(Job[str, str]):
    JOB_TYPE = "greeting"

    async def execute(self, ctx: str) -> str:
        return ""


async def test_enqueue_uses_class_defaults_and_options(clock: FakeClock) -> None:
    adapter: QueueAdapter[str] = QueueAdapter(MemoryBackend(clock=clock))
    await adapter.register_job(Greeting)
    job_id = await adapter.enqueue(CTX, Greeting(name="Ada"))
    info = await adapter.get_job(CTX, job_id)
    assert info.message.job_type == "greeting"
    assert info.message.priority is JobPriority.HIGH
    assert info.message.max_retries == 7
    assert info.message.payload_bytes == b'{"name":"Ada"}'
    other = await adapter.enqueue(
        CTX,
        Greeting(name="Bo"),
        queue="mail",
        priority=JobPriority.LOW,
        max_retries=0,
        run_at=clock() + timedelta(hours=1),
        idempotency_key="k",
    )
    info = await adapter.get_job(CTX, other)
    assert (info.message.queue, info.message.priority, info.message.max_retries) == (
        "mail",
        JobPriority.LOW,
        0,
    )
    assert info.run_at == clock() + timedelta(hours=1)


async def test_execute_job_round_trip() -> None:
    adapter: QueueAdapter[str] = QueueAdapter(MemoryBackend())
    await adapter.register_job(Greeting)
    await adapter.register_job(Silent)
    message = adapter.message_for(Greeting(name="Ada"))
    assert await adapter.job_registry.execute_job(message, "Hello") == b'"Hello, Ada"'
    assert await adapter.job_registry.execute_job(adapter.message_for(Silent()), "x") is None


async def test_unknown_and_duplicate_job_types() -> None:
    adapter: QueueAdapter[str] = QueueAdapter(MemoryBackend())
    with pytest.raises(InvalidJobType) as raised:
        await adapter.enqueue(CTX, Greeting(name="x"))
    assert raised.value.job_type == "greeting"
    await adapter.register_job(Greeting)
    await adapter.register_job(Greeting)  # the same class again is fine
    with pytest.raises(InvalidInput) as duplicate:
        await adapter.register_job(Impostor)
    assert duplicate.value.field == "JOB_TYPE"
    with pytest.raises(InvalidJobType):
        await adapter.job_registry.execute_job(JobMessage(job_type="nope", payload_bytes=b"{}"), "")


async def test_a_payload_that_does_not_decode_is_a_permanent_job_failure() -> None:
    adapter: QueueAdapter[str] = QueueAdapter(MemoryBackend())
    await adapter.register_job(Greeting)
    bad = JobMessage(job_type="greeting", payload_bytes=b'{"name": 5}')
    with pytest.raises(JobError) as raised:
        await adapter.job_registry.execute_job(bad, "Hello")
    assert raised.value.retryable is False


async def test_config_given_to_the_adapter_governs_the_backend() -> None:
    backend = MemoryBackend()
    config = QueueConfig(default_lease_duration=timedelta(seconds=9))
    adapter: QueueAdapter[str] = QueueAdapter.with_config(backend, config)
    assert backend.config is config and adapter.config is config
    assert QueueAdapter(backend, QueueConfig()).config == QueueConfig()
