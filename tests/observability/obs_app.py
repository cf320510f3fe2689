"""A worker app for the observability tests: `dogqueue worker
tests.observability.obs_app:make_adapter`. With DOGQUEUE_TEST_SPANS set, the process
records its spans there, one JSON object per line."""

from __future__ import annotations

import os
from collections.abc import Sequence

from dogqueue import Backend, Job, JobError, QueueAdapter
from dogqueue.observability import tracing


class Greet(Job[None, str]):
    JOB_TYPE = "greet"
    name: str

    async def execute(self, ctx: None) -> str:
        return f"hello, {self.name}"


class Refuse(Job[None, None]):
    JOB_TYPE = "refuse"

    async def execute(self, ctx: None) -> None:
        raise JobError("refused for good", retryable=False)


def _record_spans(path: str) -> None:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class LineExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with open(path, "a", encoding="utf-8") as out:
                for span in spans:
                    out.write(span.to_json(indent=None) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(LineExporter()))
    tracing.set_tracer_provider(provider)


async def make_adapter(backend: Backend) -> QueueAdapter[None]:
    """The factory `dogqueue worker` calls with the backend of --db."""
    spans = os.environ.get("DOGQUEUE_TEST_SPANS")
    if spans:
        _record_spans(spans)
    adapter: QueueAdapter[None] = QueueAdapter(backend)
    await adapter.register_job(Greet)
    await adapter.register_job(Refuse)
    return adapter
