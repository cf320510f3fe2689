"""OpenTelemetry spans from enqueue to execution, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import dogqueue.worker
from dogqueue import Enqueued, Job, JobMessage, QueueAdapter, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.observability import observe_execution, tracing
from dogqueue.observability.outcome import Outcome

CTX = QueueCtx("acme")


class SendEmail(Job[None, str]):
    JOB_TYPE = "email.send"
    to: str

    async def execute(self, ctx: None) -> str:
        if self.to == "bounce":
            raise RuntimeError("mailbox full")
        return f"sent to {self.to}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.set_tracer_provider(None)
        provider.shutdown()


def only(spans: InMemorySpanExporter, kind: SpanKind) -> ReadableSpan:
    found = [span for span in spans.get_finished_spans() if span.kind is kind]
    assert len(found) == 1, found
    return found[0]


async def adapter_for(backend: EngineBackend) -> QueueAdapter[None]:
    adapter: QueueAdapter[None] = QueueAdapter(backend)
    await adapter.register_job(SendEmail)
    return adapter


async def run_one(adapter: QueueAdapter[None]) -> None:
    """What a worker does around one execution."""
    lease = await adapter.backend.dequeue(CTX, ["mail"])
    assert lease is not None
    async with observe_execution(adapter.backend, CTX, lease) as observation:
        try:
            result = await adapter.job_registry.execute_job(lease.message, None)
        except RuntimeError as error:
            await adapter.backend.ack_fail(CTX, lease, str(error), retry=True)
            observation.set_outcome(Outcome.RETRYING, error)
            return
        await adapter.backend.ack_complete(CTX, lease, result)


async def test_enqueue_span_context_is_stored_with_the_job(
    backend: EngineBackend, spans: InMemorySpanExporter
) -> None:
    adapter = await adapter_for(backend)
    job_id = await adapter.enqueue(CTX, SendEmail(to="a@example.com"), queue="mail")

    enqueue = only(spans, SpanKind.PRODUCER)
    assert enqueue.name == "dogqueue.enqueue email.send"
    assert enqueue.attributes is not None
    assert dict(enqueue.attributes) == {
        "messaging.system": "dogqueue",
        "messaging.destination.name": "mail",
        "dogqueue.tenant_id": "acme",
        "dogqueue.job_type": "email.send",
        "dogqueue.job_id": job_id,
    }
    first = (await backend.history(CTX, job_id))[0]
    assert isinstance(first, Enqueued)
    assert first.trace_context is not None
    context = enqueue.get_span_context()
    assert context is not None
    assert first.trace_context["traceparent"].split("-")[1:3] == [
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    ]


async def test_a_transactional_enqueue_stores_its_span_context(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    async with SqliteBackend(tmp_path / "app.db") as backend:
        adapter = await adapter_for(backend)
        conn = sqlite3.connect(backend.path)
        try:
            handle = await adapter.enqueue_in_transaction(
                conn, CTX, SendEmail(to="a@example.com"), queue="mail"
            )
            conn.commit()
        finally:
            conn.close()
        enqueue = only(spans, SpanKind.PRODUCER)
        assert enqueue.attributes is not None
        assert enqueue.attributes["dogqueue.job_id"] == handle
        first = (await backend.history(CTX, handle))[0]
        context = enqueue.get_span_context()
        assert isinstance(first, Enqueued) and first.trace_context is not None
        assert context is not None
        assert first.trace_context["traceparent"].split("-")[2] == f"{context.span_id:016x}"


async def test_a_trace_from_enqueue_reaches_execute(
    backend: EngineBackend, spans: InMemorySpanExporter
) -> None:
    adapter = await adapter_for(backend)
    await adapter.enqueue(CTX, SendEmail(to="a@example.com"), queue="mail")
    await run_one(adapter)

    enqueue = only(spans, SpanKind.PRODUCER)
    execute = only(spans, SpanKind.CONSUMER)
    assert execute.name == "dogqueue.execute email.send"
    enqueued = enqueue.get_span_context()
    assert enqueued is not None
    assert [(link.context.trace_id, link.context.span_id) for link in execute.links] == [
        (enqueued.trace_id, enqueued.span_id)
    ]
    assert execute.context is not None
    assert execute.context.trace_id != enqueued.trace_id  # linked, not a child
    assert execute.attributes is not None
    assert execute.attributes["dogqueue.tenant_id"] == "acme"
    assert execute.attributes["messaging.destination.name"] == "mail"
    assert execute.attributes["dogqueue.job_type"] == "email.send"
    assert execute.attributes["dogqueue.attempt"] == 1
    assert execute.attributes["dogqueue.outcome"] == "completed"
    assert execute.status.status_code is StatusCode.UNSET


async def test_a_failed_execution_is_an_error_span_per_attempt(
    backend: EngineBackend, spans: InMemorySpanExporter
) -> None:
    adapter = await adapter_for(backend)
    await adapter.enqueue(CTX, SendEmail(to="bounce"), queue="mail")
    await run_one(adapter)
    execute = only(spans, SpanKind.CONSUMER)
    assert execute.attributes is not None
    assert execute.attributes["dogqueue.outcome"] == "retrying"
    assert execute.status.status_code is StatusCode.ERROR
    assert [event.name for event in execute.events] == ["exception"]


async def test_an_escaping_error_marks_the_span_failed(
    backend: EngineBackend, spans: InMemorySpanExporter
) -> None:
    adapter = await adapter_for(backend)
    await adapter.enqueue(CTX, SendEmail(to="x"), queue="mail")
    lease = await backend.dequeue(CTX, ["mail"])
    assert lease is not None
    with pytest.raises(ValueError, match="crash"):
        async with observe_execution(backend, CTX, lease):
            raise ValueError("crash")
    execute = only(spans, SpanKind.CONSUMER)
    assert execute.attributes is not None
    assert execute.attributes["dogqueue.outcome"] == "failed"
    assert execute.status.status_code is StatusCode.ERROR


async def test_without_a_configured_provider_nothing_is_stored(backend: EngineBackend) -> None:
    assert not tracing.tracing_active()
    adapter = await adapter_for(backend)
    job_id = await adapter.enqueue(CTX, SendEmail(to="a@example.com"), queue="mail")
    first = (await backend.history(CTX, job_id))[0]
    assert isinstance(first, Enqueued)
    assert first.trace_context is None
    await run_one(adapter)


def test_without_the_extras_everything_still_works() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("opentelemetry", "prometheus_client"):
                    raise ImportError(f"{name} blocked")
                return None

        sys.meta_path.insert(0, Block())
        from dogqueue import Job, QueueAdapter, QueueCtx, JobStatus
        from dogqueue.backend.memory import MemoryBackend
        from dogqueue.observability import observe_execution, tracing

        class Ping(Job[None, None]):
            JOB_TYPE = "ping"
            async def execute(self, ctx: None) -> None:
                return None

        async def main() -> None:
            assert not tracing.OTEL_AVAILABLE
            ctx = QueueCtx("t")
            async with MemoryBackend() as backend:
                adapter = QueueAdapter(backend)
                await adapter.register_job(Ping)
                await adapter.enqueue(ctx, Ping())
                lease = await backend.dequeue(ctx, ["default"])
                async with observe_execution(backend, ctx, lease):
                    await backend.ack_complete(ctx, lease)
                metrics = await adapter.observability.metrics()
                assert metrics.get_job_count("ping", JobStatus.COMPLETED) == 1
            try:
                import dogqueue.observability.prometheus
            except ImportError as error:
                print(error)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'dogqueue[prometheus]'" in done.stdout


@pytest.mark.parametrize("outcome", list(Outcome))
async def test_every_outcome_is_traced_and_logged_by_one_rule(
    backend: EngineBackend,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    outcome: Outcome,
) -> None:
    """The worker's outcomes, the span's status and the log line's level and event come
    from one vocabulary: an error outcome (lost, worker_error, lease_lost, ...) is an
    error span and a WARNING, a failed attempt logs "job failed"."""
    await backend.enqueue(CTX, JobMessage(job_type="email.send", payload_bytes=b"{}"))
    lease = await backend.dequeue(CTX, ["default"])
    assert lease is not None
    with caplog.at_level(logging.INFO, logger="dogqueue"):
        async with observe_execution(backend, CTX, lease) as observation:
            observation.set_outcome(outcome)
    span = only(spans, SpanKind.CONSUMER)
    assert span.attributes is not None and span.attributes["dogqueue.outcome"] == outcome.value
    assert (span.status.status_code is StatusCode.ERROR) == outcome.is_error
    (record,) = [r for r in caplog.records if getattr(r, "outcome", None) is not None]
    assert record.levelno == (logging.INFO if outcome is Outcome.COMPLETED else logging.WARNING)
    assert ("job failed" in record.getMessage()) == outcome.is_failure


def test_the_worker_reports_only_outcomes() -> None:
    """No outcome in the worker is a free string (they drifted from tracing's)."""
    package = Path(dogqueue.worker.__file__).parent
    source = "\n".join(path.read_text("utf-8") for path in sorted(package.glob("*.py")))
    assert "set_outcome(" in source
    for outcome in Outcome:
        assert f'return "{outcome.value}"' not in source, outcome
        assert f'set_outcome("{outcome.value}"' not in source, outcome


def test_a_global_provider_is_seen_as_soon_as_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    assert not tracing.tracing_active()  # and the environment was just read
    provider = TracerProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)  # what set_tracer_provider sets
    assert tracing.tracing_active()


def test_a_provider_named_in_the_environment_is_seen_within_a_recheck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import trace
    from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER

    assert not tracing.tracing_active()
    loaded: list[str] = []

    def load(variable: str, name: str) -> TracerProvider:
        loaded.append(variable)
        return TracerProvider()

    monkeypatch.setenv(OTEL_PYTHON_TRACER_PROVIDER, "sdk_tracer_provider")
    monkeypatch.setattr(trace, "_load_provider", load)
    monkeypatch.setattr(  # installed for this test only
        trace,
        "_set_tracer_provider",
        lambda provider, log: monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider),
    )
    monkeypatch.setattr(tracing, "_env_checked_at", float("-inf"))  # a second has passed
    assert tracing.tracing_active()
    assert loaded == [OTEL_PYTHON_TRACER_PROVIDER]
