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
    Leased,
    QueueAdapter,
    QueueConfig,
    QueueCtx,
    Worker,
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


async def test_adapters_with_their_own_configs_share_a_backend_untouched(
    clock: FakeClock,
) -> None:
    """Each adapter's config governs its own workers' leases and reaper; neither changes
    the other's nor the backend's."""
    own = QueueConfig(base_retry_backoff=timedelta(seconds=4))
    backend = MemoryBackend(clock=clock, config=own)
    short = QueueConfig(default_lease_duration=timedelta(seconds=9))
    long = QueueConfig(
        default_lease_duration=timedelta(minutes=2), reaper_interval=timedelta(seconds=7)
    )
    first: QueueAdapter[str] = QueueAdapter(backend, short)
    second: QueueAdapter[str] = QueueAdapter.with_config(backend, long)
    plain: QueueAdapter[str] = QueueAdapter(backend)
    assert backend.config is own
    assert (first.config, second.config, plain.config) == (short, long, own)
    backend.config = QueueConfig()  # an adapter without a config of its own follows it
    assert plain.config == QueueConfig() and first.config is short
    backend.config = own

    await first.register_job(Greeting)
    await second.register_job(Greeting)
    for adapter, lease in ((first, timedelta(seconds=9)), (second, timedelta(minutes=2))):
        job_id = await adapter.enqueue(CTX, Greeting(name="x"))
        worker = Worker(adapter, tenants=[CTX], context="Hi", handle_signals=False)
        assert worker.settings.lease_duration == lease
        assert worker.settings.reaper_interval == adapter.config.reaper_interval
        async with worker:
            assert await adapter.wait_result(CTX, job_id, timeout=10) == "Hi, x"
        leased = [e for e in await backend.history(CTX, job_id) if isinstance(e, Leased)]
        assert [e.expires_at - e.at for e in leased] == [lease]
    assert backend.config is own
    assert (first.config, second.config) == (short, long)
