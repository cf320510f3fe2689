"""Observability of the worker: a trace from `adapter.enqueue` reaches `execute`, and a
worker process started with --metrics-port is scraped and agrees with other readers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from dogqueue import JobStatus, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.observability import tracing
from tests.observability.obs_app import Greet, Refuse, make_adapter
from tests.runtime.helpers import PATIENCE_SECONDS, until_status

ROOT = Path(__file__).resolve().parents[2]
ACME = QueueCtx("acme")


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


async def test_a_trace_from_enqueue_reaches_execute_in_a_worker(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    async with MemoryBackend() as backend:
        adapter = await make_adapter(backend)
        greeted = await adapter.enqueue(ACME, Greet(name="ada"))
        refused = await adapter.enqueue(ACME, Refuse())
        with caplog.at_level(logging.INFO, logger="dogqueue"):
            async with Worker(adapter, tenants=[ACME], handle_signals=False):
                await until_status(backend, ACME, greeted, JobStatus.COMPLETED)
                await until_status(backend, ACME, refused, JobStatus.FAILED)

    finished = spans.get_finished_spans()
    enqueues = {
        span.attributes["dogqueue.job_id"]: span
        for span in finished
        if span.kind is SpanKind.PRODUCER and span.attributes is not None
    }
    executions = {
        span.attributes["dogqueue.job_id"]: span
        for span in finished
        if span.kind is SpanKind.CONSUMER and span.attributes is not None
    }
    assert set(enqueues) == set(executions) == {greeted, refused}
    for job_id, execution in executions.items():
        enqueued = enqueues[job_id].get_span_context()
        assert enqueued is not None
        assert [(link.context.trace_id, link.context.span_id) for link in execution.links] == [
            (enqueued.trace_id, enqueued.span_id)
        ]
        assert execution.attributes is not None
        assert execution.attributes["dogqueue.tenant_id"] == "acme"
        assert execution.attributes["dogqueue.attempt"] == 1
    outcomes = {job_id: dict(span.attributes or {}) for job_id, span in executions.items()}
    assert outcomes[greeted]["dogqueue.outcome"] == "completed"
    assert outcomes[refused]["dogqueue.outcome"] == "failed"
    assert executions[refused].status.status_code is StatusCode.ERROR

    lines = [r for r in caplog.records if r.name == "dogqueue.jobs"]
    logged = {(r.__dict__["job_id"], r.__dict__.get("outcome")) for r in lines}
    assert logged == {
        (greeted, None),
        (greeted, "completed"),
        (refused, None),
        (refused, "failed"),
    }


def _metrics_url(stderr: IO[str], seen: list[str]) -> str:
    for line in stderr:
        seen.append(line)
        found = re.search(r"metrics on (http://\S+/metrics)", line)
        if found:
            return found.group(1)
    raise AssertionError("the worker never announced its metrics endpoint:\n" + "".join(seen))


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: str = response.read().decode()
        return body


def _dogqueue(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dogqueue", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


async def test_a_worker_process_is_scraped_and_agrees_with_other_processes(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    db = tmp_path / "queue.db"
    span_file = tmp_path / "worker-spans.jsonl"
    async with SqliteBackend(db) as backend:
        adapter: QueueAdapter[None] = await make_adapter(backend)
        ids = [await adapter.enqueue(ACME, Greet(name=f"n{i}")) for i in range(4)]
        refused = await adapter.enqueue(ACME, Refuse())
        env = dict(os.environ, PYTHONPATH=str(ROOT), DOGQUEUE_TEST_SPANS=str(span_file))
        process = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child)
            [
                sys.executable,
                "-m",
                "dogqueue",
                "worker",
                "tests.observability.obs_app:make_adapter",
                "--db",
                str(db),
                "--tenant",
                "acme",
                "--metrics-port",
                "0",
            ],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: list[str] = []
        try:
            assert process.stderr is not None
            url = await asyncio.wait_for(
                asyncio.to_thread(_metrics_url, process.stderr, seen), PATIENCE_SECONDS
            )
            assert url.startswith("http://127.0.0.1:")
            for job_id in ids:
                await until_status(backend, ACME, job_id, JobStatus.COMPLETED)
            await until_status(backend, ACME, refused, JobStatus.FAILED)
            scraped = await asyncio.to_thread(_get, url)
        finally:
            process.send_signal(signal.SIGTERM)
            _, rest = await asyncio.to_thread(process.communicate, None, 60)
        assert process.returncode == 0, "".join(seen) + (rest or "")

    values = {
        (sample.name, sample.labels.get("job_type"), sample.labels.get("status")): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.labels.get("tenant") == "acme"
    }
    assert values["dogqueue_jobs_enqueued_total", "greet", None] == 4
    assert values["dogqueue_jobs_completed_total", "greet", None] == 4
    assert values["dogqueue_jobs_dead_total", "refuse", None] == 1
    assert values["dogqueue_job_execution_seconds_count", "greet", None] == 4
    # The worker's own series: nothing it could not run (no deploy in progress).
    own = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "dogqueue_worker_not_runnable_jobs_total"
    }
    assert own == {"released": 0.0, "failed": 0.0}

    # A separate `dogqueue metrics` and `dogqueue stats` read the same numbers.
    printed = json.loads(_dogqueue("metrics", "--db", str(db), "--format", "json"))
    rows = {row["job_type"]: row for row in printed["series"]}
    assert rows["greet"]["completed"] == values["dogqueue_jobs_completed_total", "greet", None]
    assert rows["refuse"]["dead"] == values["dogqueue_jobs_dead_total", "refuse", None]
    for job_type in ("greet", "refuse"):
        for status in JobStatus:
            scraped_count = values["dogqueue_jobs", job_type, str(status)]
            assert rows[job_type]["by_status"].get(str(status), 0) == scraped_count
    stats = json.loads(_dogqueue("stats", "--db", str(db), "--json"))
    assert stats["by_status"] == {"completed": 4, "failed": 1}
    assert stats["by_type"] == {"greet": 4, "refuse": 1}

    # The worker process's execution spans link to the enqueue spans made here.
    enqueued = {
        span.attributes["dogqueue.job_id"]: span.get_span_context()
        for span in spans.get_finished_spans()
        if span.kind is SpanKind.PRODUCER and span.attributes is not None
    }
    executed = [
        json.loads(line)
        for line in span_file.read_text().splitlines()
        if json.loads(line)["kind"] == "SpanKind.CONSUMER"
    ]
    assert len(executed) == 5
    for span in executed:
        context = enqueued[span["attributes"]["dogqueue.job_id"]]
        assert context is not None
        assert [link["context"]["trace_id"] for link in span["links"]] == [
            f"0x{context.trace_id:032x}"
        ]
    assert "job finished" in rest and "outcome=completed" in rest
