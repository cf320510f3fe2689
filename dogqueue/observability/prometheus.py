"""Prometheus exposition of the log's metrics (optional extra `prometheus`).

`render(snapshot)` gives the text format; `MetricsServer` serves it on `/metrics` from
the running event loop, folding the log afresh for every scrape. Job ids are never
labels; `tenant_labels=False` sums every tenant into one series for large deployments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Self

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "dogqueue.observability.prometheus needs the 'prometheus' extra:"
        " pip install 'dogqueue[prometheus]'"
    ) from missing

import contextlib

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import InvalidInput
from dogqueue.core.status import JobStatus
from dogqueue.observability.metrics import (
    MetricsSnapshot,
    SeriesCounters,
    SeriesKey,
    SeriesMetrics,
)
from dogqueue.observability.reader import MetricsReader

#: Every metric name starts with this.
NAMESPACE = "dogqueue"

_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("jobs_enqueued", "enqueued", "Jobs enqueued."),
    ("job_attempts", "attempts", "Attempts started (leases taken)."),
    ("jobs_completed", "completed", "Attempts that completed."),
    ("job_attempts_failed", "failed_attempts", "Attempts that failed or whose lease expired."),
    ("job_retries", "retries", "Retries scheduled after failed attempts."),
    ("jobs_dead", "dead", "Jobs that failed for good (dead letters)."),
    ("jobs_canceled", "canceled", "Jobs canceled."),
    ("jobs_released", "released", "Leases given back unfinished (not counted as attempts)."),
    ("jobs_requeued", "requeued", "Failed or canceled jobs put back in the queue."),
)


def _merged(snapshot: MetricsSnapshot, tenant_labels: bool) -> list[SeriesMetrics]:
    """The snapshot's series, summed over tenants unless tenant labels are wanted."""
    if tenant_labels:
        return list(snapshot.series)
    groups: dict[SeriesKey, list[SeriesMetrics]] = {}
    for item in snapshot.series:
        key = SeriesKey("", item.key.queue, item.key.job_type)
        groups.setdefault(key, []).append(item)
    merged: list[SeriesMetrics] = []
    for key, items in sorted(groups.items()):
        counters = SeriesCounters()
        by_status: dict[JobStatus, int] = {}
        for item in items:
            counters.merge(item.counters)
            for status, count in item.by_status.items():
                by_status[status] = by_status.get(status, 0) + count
        ages = [item.oldest_ready_age for item in items if item.oldest_ready_age is not None]
        merged.append(
            SeriesMetrics(
                key=key,
                counters=counters,
                by_status=by_status,
                ready=sum(item.ready for item in items),
                scheduled=sum(item.scheduled for item in items),
                oldest_ready_age=max(ages, default=None),
            )
        )
    return merged


def metric_families(snapshot: MetricsSnapshot, *, tenant_labels: bool = True) -> Iterator[Metric]:
    """The snapshot as Prometheus metric families."""
    series = _merged(snapshot, tenant_labels)
    base = ["tenant", "queue", "job_type"] if tenant_labels else ["queue", "job_type"]

    def labels(key: SeriesKey, *extra: str) -> list[str]:
        values = [key.queue, key.job_type, *extra]
        return [key.tenant_id, *values] if tenant_labels else values

    for suffix, attribute, documentation in _COUNTERS:
        counter = CounterMetricFamily(f"{NAMESPACE}_{suffix}", documentation, labels=base)
        for item in series:
            counter.add_metric(labels(item.key), getattr(item.counters, attribute))
        yield counter

    jobs = GaugeMetricFamily(
        f"{NAMESPACE}_jobs", "Jobs known to the log, by current status.", labels=[*base, "status"]
    )
    depth = GaugeMetricFamily(
        f"{NAMESPACE}_queue_depth",
        "Jobs waiting or running: ready (due now), scheduled (due later), leased.",
        labels=[*base, "state"],
    )
    oldest = GaugeMetricFamily(
        f"{NAMESPACE}_oldest_ready_job_age_seconds",
        "How long the longest-waiting ready job has been due (0 when none is ready).",
        labels=base,
    )
    for item in series:
        for status in JobStatus:
            jobs.add_metric(labels(item.key, str(status)), item.by_status.get(status, 0))
        depth.add_metric(labels(item.key, "ready"), item.ready)
        depth.add_metric(labels(item.key, "scheduled"), item.scheduled)
        depth.add_metric(labels(item.key, "leased"), item.leased)
        age = item.oldest_ready_age
        oldest.add_metric(labels(item.key), 0.0 if age is None else age.total_seconds())
    yield jobs
    yield depth
    yield oldest
    unsealed = GaugeMetricFamily(
        f"{NAMESPACE}_log_unsealed_events",
        "Committed events not yet given a log position (PostgreSQL): a count that stays"
        " up means the sequencer is held back, e.g. by a long transaction on the server.",
    )
    unsealed.add_metric([], snapshot.unsealed_events)
    yield unsealed

    execution = HistogramMetricFamily(
        f"{NAMESPACE}_job_execution_seconds",
        "Execution time of finished attempts (lease to acknowledgement), by outcome.",
        labels=[*base, "outcome"],
    )
    latency = HistogramMetricFamily(
        f"{NAMESPACE}_job_start_latency_seconds",
        "Time from when a job was due (enqueued, scheduled or retry time) to its lease.",
        labels=base,
    )
    for item in series:
        for outcome, histogram in sorted(item.counters.execution.items()):
            execution.add_metric(
                labels(item.key, outcome),
                histogram.cumulative(),
                histogram.total.total_seconds(),
            )
        start = item.counters.start_latency
        latency.add_metric(labels(item.key), start.cumulative(), start.total.total_seconds())
    yield execution
    yield latency


class DogqueueCollector(Collector):
    """dogqueue's metrics for a prometheus_client registry of your own, e.g. beside your
    application's metrics on its `/metrics`:

        collector = DogqueueCollector()
        prometheus_client.REGISTRY.register(collector)
        ...
        collector.update(await MetricsReader(backend).snapshot())  # e.g. every 15 s

    `collect()` serves the latest snapshot given to `update` (none: no series)."""

    def __init__(
        self, snapshot: MetricsSnapshot | None = None, *, tenant_labels: bool = True
    ) -> None:
        self.tenant_labels = tenant_labels
        self._snapshot = snapshot

    def update(self, snapshot: MetricsSnapshot) -> None:
        """Serve `snapshot` from now on."""
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        """The metric families of the latest snapshot."""
        if self._snapshot is None:
            return []
        return list(metric_families(self._snapshot, tenant_labels=self.tenant_labels))


def worker_families(counters: Mapping[str, int]) -> Iterator[Metric]:
    """One worker process's own counters (not in the log): jobs it had no code for
    (unknown type, undecodable payload), given back for a newer worker during a rolling
    deploy or failed once the deploy grace period ended."""
    not_runnable = CounterMetricFamily(
        f"{NAMESPACE}_worker_not_runnable_jobs",
        "Jobs this worker could not run (a deploy in progress?), by what it did with them.",
        labels=["outcome"],
    )
    not_runnable.add_metric(["released"], counters.get("not_runnable_released", 0))
    not_runnable.add_metric(["failed"], counters.get("not_runnable_failed", 0))
    yield not_runnable


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def render(
    snapshot: MetricsSnapshot,
    *,
    tenant_labels: bool = True,
    worker_counters: Mapping[str, int] | None = None,
) -> bytes:
    """The snapshot (and a worker's own counters, if given) in the Prometheus text
    exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DogqueueCollector(snapshot, tenant_labels=tenant_labels))
    if worker_counters is not None:
        registry.register(_Families(list(worker_families(worker_counters))))
    return generate_latest(registry)


_MAX_REQUEST_BYTES = 16_384
#: How long a client may take to send its request before the connection is dropped.
REQUEST_TIMEOUT_SECONDS = 10.0


class MetricsServer:
    """Serves `GET /metrics` over HTTP on the running event loop; each scrape folds the
    log's new events and renders a fresh snapshot. Port 0 picks a free port.
    `worker_counters` (a Worker's `counters`, read at each scrape) adds that worker's own
    series.

    A client that has not sent its whole request within `request_timeout` seconds is
    disconnected; `close()` drops every open connection, so an idle or slow client can
    never hold up shutdown."""

    def __init__(
        self,
        backend_or_reader: Backend | MetricsReader,
        *,
        host: str = "127.0.0.1",
        port: int = 9464,
        tenant_labels: bool = True,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        worker_counters: Mapping[str, int] | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInput("port", "must be an int from 0 to 65535")
        if (
            isinstance(request_timeout, bool)
            or not isinstance(request_timeout, (int, float))
            or not request_timeout > 0
        ):
            raise InvalidInput("request_timeout", "must be a positive number of seconds")
        self._request_timeout = float(request_timeout)
        self._connections: set[asyncio.Task[None]] = set()
        if isinstance(backend_or_reader, MetricsReader):
            self.reader = backend_or_reader
        else:
            self.reader = MetricsReader(backend_or_reader)
        self._host = host
        self._port = port
        self._tenant_labels = tenant_labels
        self._worker_counters = worker_counters
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when started with port 0)."""
        if self._server is None:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Start listening; idempotent."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def close(self) -> None:
        """Stop listening, drop open connections (idle, slow or mid-scrape) and wait
        for them to end; idempotent."""
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            for connection in list(self._connections):
                connection.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = asyncio.current_task()
        assert connection is not None
        self._connections.add(connection)
        try:
            await self._answer(reader, writer)
        except asyncio.CancelledError:
            pass  # closing: the connection is dropped below
        finally:
            self._connections.discard(connection)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._request_timeout)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(request_line) < 2 or request_line[0] not in ("GET", "HEAD"):
                await _respond(writer, 405, b"method not allowed\n", "text/plain")
            elif request_line[1].split("?", 1)[0] != "/metrics":
                await _respond(writer, 404, b"not found; try /metrics\n", "text/plain")
            else:
                snapshot = await self.reader.snapshot()
                body = render(
                    snapshot,
                    tenant_labels=self._tenant_labels,
                    worker_counters=self._worker_counters,
                )
                if request_line[0] == "HEAD":
                    body = b""
                await _respond(writer, 200, body, CONTENT_TYPE_LATEST)
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            TimeoutError,
        ):
            pass


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str
) -> None:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()
