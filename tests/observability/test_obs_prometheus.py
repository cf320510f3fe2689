"""The Prometheus endpoint, scraped over loopback."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dogqueue import FakeClock, InvalidInput, JobMessage, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.postgres.backend import PostgresBackend
from dogqueue.backend.postgres.queries import Q
from dogqueue.observability.prometheus import MetricsServer, render
from dogqueue.observability.reader import MetricsReader
from tests.observability.obs_workload import run_workload


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


async def scrape(server: MetricsServer, path: str = "/metrics") -> tuple[int, str, str]:
    return await asyncio.to_thread(_get, f"http://127.0.0.1:{server.port}{path}")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_scrape_has_conventional_names_units_and_histograms(
    backend: EngineBackend, clock: FakeClock
) -> None:
    await run_workload(backend, clock)
    async with MetricsServer(backend, port=0) as server:
        status, content_type, body = await scrape(server)
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    values = samples(body)
    email = {("tenant", "acme"), ("queue", "default"), ("job_type", "email")}
    assert values["dogqueue_jobs_enqueued_total", frozenset(email)] == 3
    assert values["dogqueue_jobs_completed_total", frozenset(email)] == 2
    assert values["dogqueue_job_retries_total", frozenset(email)] == 1
    assert values["dogqueue_jobs", frozenset({*email, ("status", "completed")})] == 2
    assert values["dogqueue_queue_depth", frozenset({*email, ("state", "ready")})] == 1
    completed = frozenset({*email, ("outcome", "completed")})
    assert values["dogqueue_job_execution_seconds_count", completed] == 2
    assert values["dogqueue_job_execution_seconds_sum", completed] == 6.0
    # 2 s and 4 s: one at or below 2.5 s, both at or below 5 s.
    assert values["dogqueue_job_execution_seconds_bucket", completed | {("le", "2.5")}] == 1
    assert values["dogqueue_job_execution_seconds_bucket", completed | {("le", "5.0")}] == 2
    assert values["dogqueue_job_start_latency_seconds_count", frozenset(email)] == 3
    reports = frozenset({("tenant", "acme"), ("queue", "reports"), ("job_type", "report")})
    assert values["dogqueue_oldest_ready_job_age_seconds", reports] == 19.0
    assert "# TYPE dogqueue_job_execution_seconds histogram" in body
    assert "# TYPE dogqueue_jobs_enqueued_total counter" in body


async def test_job_ids_are_never_labels(backend: EngineBackend, clock: FakeClock) -> None:
    await run_workload(backend, clock)
    job_ids = {event.job_id for event in await backend.read_events()}
    async with MetricsServer(backend, port=0) as server:
        _, _, body = await scrape(server)
    label_names = {name for _, labels in samples(body) for name, _ in labels}
    assert label_names <= {"tenant", "queue", "job_type", "status", "state", "outcome", "le"}
    assert not any(job_id in body for job_id in job_ids)


async def test_tenant_labels_can_be_switched_off(backend: EngineBackend, clock: FakeClock) -> None:
    await run_workload(backend, clock)
    async with MetricsServer(backend, port=0, tenant_labels=False) as server:
        _, _, body = await scrape(server)
    values = samples(body)
    email = frozenset({("queue", "default"), ("job_type", "email")})
    assert values["dogqueue_jobs_enqueued_total", email] == 6  # acme 3 + globex 3
    assert values["dogqueue_queue_depth", email | {("state", "leased")}] == 1
    assert 'tenant="' not in body


async def test_each_scrape_sees_new_events(backend: EngineBackend, clock: FakeClock) -> None:
    async with MetricsServer(backend, port=0) as server:
        _, _, empty = await scrape(server)
        await run_workload(backend, clock)
        _, _, full = await scrape(server)
    assert "dogqueue_jobs_enqueued_total{" not in empty
    assert "dogqueue_jobs_enqueued_total{" in full


async def test_other_paths_and_methods(backend: EngineBackend) -> None:
    async with MetricsServer(backend, port=0) as server:
        status, _, _ = await scrape(server, "/nothing")
        assert status == 404
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(urllib.request.urlopen, request, None, 30)
        refused.value.close()
        assert refused.value.code == 405
    with pytest.raises(InvalidInput, match="port"):
        MetricsServer(backend, port=70000)


async def test_unsealed_events_are_a_gauge_that_shows_a_held_back_sequencer(
    backend: EngineBackend, backend_kind: str, pg_dsn_schema: tuple[str, str] | None
) -> None:
    """On PostgreSQL a sequencer step held open (its process frozen mid-step) keeps new
    events from getting positions: the gauge shows them until it ends, and the scrape
    does not wait for it. Elsewhere it stays 0."""

    def gauge(text: str) -> float:
        return samples(text)[("dogqueue_log_unsealed_events", frozenset())]

    reader = MetricsReader(backend)
    message = JobMessage(job_type="t", payload_bytes=b"{}")
    stuck = None
    if pg_dsn_schema is not None:
        dsn, schema = pg_dsn_schema
        stuck = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
        await stuck.execute("BEGIN")
        await stuck.fetchrow(Q["lock_log_head"])  # what a step does first
    try:
        await backend.enqueue_many(QueueCtx("acme"), [message] * 3)
        held = gauge(render(await asyncio.wait_for(reader.snapshot(), 60)).decode())
        assert held == (3 if stuck is not None else 0)
    finally:
        if stuck is not None:
            await stuck.execute("ROLLBACK")
            await stuck.close()
    assert gauge(render(await reader.snapshot()).decode()) == 0
    await reader.close()


@pytest.fixture
def pg_dsn_schema(backend: EngineBackend) -> tuple[str, str] | None:
    """The DSN and schema of a PostgreSQL backend under test, else None."""
    if isinstance(backend, PostgresBackend):
        return backend.dsn, backend.schema
    return None
