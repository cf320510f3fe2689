"""OpenTelemetry spans for enqueue and execution (optional extra `otel`).

The enqueue span's W3C trace context is stored in the `enqueued` event; the span of each
execution links to it, so a job's trace survives the trip through the log to any worker
process. Without opentelemetry-api installed, `OTEL_AVAILABLE` is False and every
function here does nothing beyond what the untraced call does.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from dogqueue.backend.contract import Backend
from dogqueue.core.events import Enqueued
from dogqueue.core.job import LeasedJob
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.observability.outcome import Outcome

try:
    from opentelemetry import propagate, trace
    from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
    from opentelemetry.trace import Link, SpanKind, StatusCode

    OTEL_AVAILABLE = True
except ImportError:  # the `otel` extra is not installed
    OTEL_AVAILABLE = False

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

#: The instrumentation scope name of dogqueue's spans.
TRACER_NAME = "dogqueue"

ATTR_SYSTEM = "messaging.system"
ATTR_QUEUE = "messaging.destination.name"
ATTR_TENANT = "dogqueue.tenant_id"
ATTR_JOB_TYPE = "dogqueue.job_type"
ATTR_JOB_ID = "dogqueue.job_id"
ATTR_ATTEMPT = "dogqueue.attempt"
ATTR_OUTCOME = "dogqueue.outcome"

_provider_override: TracerProvider | None = None


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """Use `provider` for dogqueue's spans instead of the global one (None: the global)."""
    global _provider_override
    _provider_override = provider


#: How often, while no global provider is set, the environment is read again for one.
ENV_RECHECK_SECONDS = 1.0
_env_checked_at = float("-inf")
_env_names_provider = False
_UNKNOWN = object()


def _global_provider() -> TracerProvider | None:
    """OpenTelemetry's global provider, or None when none is set (cheaply: the worker
    asks once per job)."""
    global _env_checked_at, _env_names_provider
    installed = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if installed is None:
        # Not set in code; `get_tracer_provider` would look for one named in the
        # environment, a failed lookup that costs microseconds each time: look at most
        # once a second.
        now = time.monotonic()
        if now - _env_checked_at >= ENV_RECHECK_SECONDS:
            _env_names_provider = OTEL_PYTHON_TRACER_PROVIDER in os.environ
            _env_checked_at = now
        if not _env_names_provider:
            return None
    return trace.get_tracer_provider()


def _tracer() -> Tracer | None:
    """dogqueue's tracer when a real (SDK) provider is configured, else None."""
    if not OTEL_AVAILABLE:
        return None
    provider = _provider_override or _global_provider()
    if provider is None:
        return None
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer(TRACER_NAME)


def tracing_active() -> bool:
    """True when spans would be recorded (extra installed and a provider configured)."""
    return _tracer() is not None


@contextmanager
def enqueue_span(ctx: QueueCtx, message: JobMessage) -> Iterator[EnqueueTrace]:
    """A PRODUCER span around an enqueue; `trace_context` is what to store with the job."""
    tracer = _tracer()
    if tracer is None:
        yield EnqueueTrace(None, None)
        return
    with _enqueue_span(tracer, ctx, message) as traced:
        yield traced


@contextmanager
def _enqueue_span(tracer: Tracer, ctx: QueueCtx, message: JobMessage) -> Iterator[EnqueueTrace]:
    with tracer.start_as_current_span(
        f"dogqueue.enqueue {message.job_type}",
        kind=SpanKind.PRODUCER,
        attributes={
            ATTR_SYSTEM: "dogqueue",
            ATTR_QUEUE: message.queue,
            ATTR_TENANT: ctx.tenant_id,
            ATTR_JOB_TYPE: message.job_type,
        },
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield EnqueueTrace(span, carrier or None)


class EnqueueTrace:
    """The enqueue span (None when not tracing) and the context to store with the job."""

    def __init__(self, span: Span | None, trace_context: dict[str, str] | None) -> None:
        self.span = span
        self.trace_context = trace_context

    def set_job_id(self, job_id: str) -> None:
        """Record the new job's id on the span."""
        if self.span is not None:
            self.span.set_attribute(ATTR_JOB_ID, job_id)


async def traced_enqueue(backend: Backend, ctx: QueueCtx, message: JobMessage) -> str:
    """`backend.enqueue` inside an enqueue span whose context is stored with the job
    (just `backend.enqueue` when no tracer provider is configured)."""
    tracer = _tracer()
    if tracer is None:
        return await backend.enqueue(ctx, message)
    with _enqueue_span(tracer, ctx, message) as traced:
        job_id = await backend.enqueue(ctx, message, trace_context=traced.trace_context)
        traced.set_job_id(job_id)
        return job_id


async def stored_trace_context(
    backend: Backend, ctx: QueueCtx, job_id: str
) -> dict[str, str] | None:
    """The trace context stored with the job's `enqueued` event, if any."""
    history = await backend.history(ctx, job_id)
    first = history[0] if history else None
    return first.trace_context if isinstance(first, Enqueued) else None


class ExecutionSpan:
    """The span of one execution (None when not tracing); set the outcome before it ends."""

    def __init__(self, span: Span | None) -> None:
        self.span = span
        self.outcome: Outcome | None = None

    def set_outcome(self, outcome: Outcome) -> None:
        """How the execution ended; an error outcome makes an error span."""
        self.outcome = outcome
        if self.span is not None:
            self.span.set_attribute(ATTR_OUTCOME, outcome.value)
            if outcome.is_error:
                self.span.set_status(StatusCode.ERROR)


@asynccontextmanager
async def execution_span(
    backend: Backend, ctx: QueueCtx, lease: LeasedJob
) -> AsyncIterator[ExecutionSpan]:
    """A CONSUMER span around one execution of a leased job, linked to the span that
    enqueued it. An exception escaping the block is recorded and sets outcome "failed"."""
    tracer = _tracer()
    if tracer is None:
        yield ExecutionSpan(None)
        return
    links: list[Link] = []
    trace_context = await stored_trace_context(backend, ctx, lease.job_id)
    if trace_context:
        linked = trace.get_current_span(propagate.extract(trace_context)).get_span_context()
        if linked.is_valid:
            links.append(Link(linked))
    attributes: dict[str, Any] = {
        ATTR_SYSTEM: "dogqueue",
        ATTR_QUEUE: lease.message.queue,
        ATTR_TENANT: lease.tenant_id,
        ATTR_JOB_TYPE: lease.message.job_type,
        ATTR_JOB_ID: lease.job_id,
        ATTR_ATTEMPT: lease.attempt,
    }
    with tracer.start_as_current_span(
        f"dogqueue.execute {lease.message.job_type}",
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
    ) as span:
        handle = ExecutionSpan(span)
        try:
            yield handle
        except BaseException:
            if handle.outcome is None:
                handle.set_outcome(Outcome.FAILED)
            raise
        if handle.outcome is None:
            handle.set_outcome(Outcome.COMPLETED)
