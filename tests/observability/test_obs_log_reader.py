"""The metrics reader tails any backend's log by position through its LogReader."""

from __future__ import annotations

from dogqueue import FakeClock, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.observability.metrics import metrics_from_events
from dogqueue.observability.reader import MetricsReader
from tests.observability.obs_workload import ACME, message, run_workload


async def test_a_log_reader_gives_the_same_metrics_as_its_backend(
    backend: EngineBackend, clock: FakeClock
) -> None:
    await run_workload(backend, clock)
    log = backend.log_reader()
    try:
        from_log = MetricsReader(log, page_size=7, clock=clock)
        from_backend = MetricsReader(backend)
        assert (await from_log.snapshot()).to_dict() == (await from_backend.snapshot()).to_dict()
        assert from_log.last_position == await log.last_position()
        # Tailing: only what was appended since is read, by position.
        await backend.enqueue(ACME, message("email"))
        assert await from_log.catch_up() == 1
        assert from_log.last_position == await log.last_position()
        full = metrics_from_events(await backend.read_events(), clock())
        assert (await from_log.snapshot()).to_dict() == full.to_dict()
        acme = (await MetricsReader(backend).snapshot(QueueCtx("acme"))).to_dict()
        assert (await from_log.snapshot(QueueCtx("acme"))).to_dict() == acme
    finally:
        await log.close()
