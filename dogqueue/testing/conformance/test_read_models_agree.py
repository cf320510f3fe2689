"""The dashboard's read model (`Backend.browser()`), `dogqueue stats` (`job_stats` over the
stored log) and the metrics agree on every figure they share, on every backend: jobs by
status, ready jobs, and the oldest ready job's age by the core's readiness rule
(`dogqueue.core.order.ready_since`), after leases, releases, retries, a workflow whose
steps wait, and cancels. The dashboard's jobs-ahead count follows the core's dequeue
order."""

from __future__ import annotations

from datetime import datetime, timedelta

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.audit.api import job_stats, jobs_at
from dogqueue.audit.timetravel import AsOf
from dogqueue.backend.contract import Backend
from dogqueue.core.job import JobInfo
from dogqueue.core.order import jobs_ahead
from dogqueue.core.status import JobPriority, JobStatus
from dogqueue.observability.reader import Observability

ACME, GLOBEX = QueueCtx("acme"), QueueCtx("globex")
LEASE = timedelta(hours=6)


def _message(**fields: object) -> JobMessage:
    return JobMessage(job_type="work", payload_bytes=b"{}", **fields)  # type: ignore[arg-type]


async def _story(backend: Backend, clock: FakeClock) -> datetime:
    """Leases, releases, a retry, a workflow whose steps wait, cancels and an expired
    lease; returns the moment acme's longest-waiting ready job became ready (its
    release, an hour after its run_at)."""
    start = clock()
    urgent = await backend.enqueue(ACME, _message(priority=JobPriority.HIGH))
    plain = await backend.enqueue_many(ACME, [_message(), _message(), _message()])
    await backend.enqueue(ACME, _message(run_at=start + timedelta(days=1)))  # scheduled
    parent = await backend.enqueue(ACME, _message(queue="flows"))
    steps = await backend.enqueue_many(ACME, [_message(after=(parent,))] * 3)

    first = await backend.dequeue(ACME, ["default"], lease_duration=LEASE)
    assert first is not None and first.job_id == urgent
    clock.advance(timedelta(hours=1))
    released_at = clock()
    await backend.release(ACME, first)

    leases = await backend.dequeue_many(ACME, ["default"], 4, lease_duration=LEASE)
    assert [lease.job_id for lease in leases] == [urgent, *plain]
    await backend.release(ACME, leases[0])  # released again, at the same moment
    await backend.ack_complete(ACME, leases[1])
    assert await backend.ack_fail(ACME, leases[2], "boom") is JobStatus.ENQUEUED
    clock.advance(timedelta(minutes=30))  # leases[3] stays held

    flow = await backend.dequeue(ACME, ["flows"], lease_duration=LEASE)
    assert flow is not None and flow.job_id == parent
    await backend.cancel_job(ACME, steps[0])  # while it waits
    await backend.ack_complete(ACME, flow)  # the other two steps are ready from now
    await backend.cancel_job(ACME, steps[1])

    expiring = await backend.enqueue(GLOBEX, _message())
    lease = await backend.dequeue(GLOBEX, ["default"], lease_duration=timedelta(hours=1))
    assert lease is not None and lease.job_id == expiring
    clock.advance(timedelta(minutes=5))
    doomed = await backend.enqueue(GLOBEX, _message())
    assert await backend.cancel_workflow(GLOBEX, doomed) == [doomed]
    blocker = await backend.enqueue(GLOBEX, _message(priority=JobPriority.LOW))
    await backend.enqueue(GLOBEX, _message(after=(blocker,)))
    clock.advance(timedelta(hours=2))  # the lease has expired
    assert await backend.reap_expired() == 1
    # Two jobs alike but for their enqueue position: the second has the first ahead of it
    # (tenant and log positions differ here, so each must be compared with its own kind).
    await backend.enqueue_many(GLOBEX, [_message(), _message()])
    clock.advance(timedelta(minutes=10))
    return released_at


def _dashboard_figures(
    counts: dict[JobStatus, int], ready: int, oldest: datetime | None, now: datetime
) -> tuple[dict[str, int], int, timedelta | None]:
    by_status = {status.value: count for status, count in counts.items() if count}
    return by_status, ready, None if oldest is None else now - oldest


async def test_dashboard_stats_and_metrics_agree(backend: Backend, clock: FakeClock) -> None:
    released_at = await _story(backend, clock)
    now = clock()
    overview = {
        summary.tenant_id: summary for summary in await backend.browser().tenant_overview(now)
    }
    assert sorted(overview) == ["acme", "globex"]
    log = backend.log_reader()
    observed = Observability(backend)
    for ctx in (ACME, GLOBEX):
        summary = overview[ctx.tenant_id]
        dashboard = _dashboard_figures(summary.counts, summary.ready, summary.oldest_ready_at, now)

        jobs = await jobs_at(log, ctx.tenant_id, AsOf())
        stats = job_stats(jobs, now)
        age = stats["oldest_ready_age_seconds"]
        ready = sum(1 for job in jobs if job.status is JobStatus.ENQUEUED and job.run_at <= now)
        from_stats = (stats["by_status"], ready, None if age is None else timedelta(seconds=age))

        metrics = await observed.metrics(ctx)
        from_metrics = (
            {
                status.value: count
                for status in JobStatus
                if (count := metrics.get_job_count(status=status))
            },
            metrics.get_queue_depth()["ready"],
            metrics.get_oldest_ready_age(),
        )
        assert dashboard == from_stats == from_metrics, ctx.tenant_id
        assert summary.scheduled == metrics.get_queue_depth()["scheduled"]
        assert summary.leased == metrics.get_queue_depth()["leased"]

    # The figures themselves: acme's oldest ready job waits since its release (not its
    # run_at, an hour earlier); every kind of status the story made is counted.
    acme = overview["acme"]
    assert acme.oldest_ready_at == released_at
    assert acme.counts == {
        JobStatus.ENQUEUED: 4,  # released, retried, scheduled, a freed step
        JobStatus.LEASED: 1,
        JobStatus.COMPLETED: 2,
        JobStatus.CANCELED: 2,
    }
    assert (acme.ready, acme.scheduled) == (3, 1)
    assert overview["globex"].counts == {
        JobStatus.ENQUEUED: 4,  # expired and retried, the blocker, two alike
        JobStatus.CANCELED: 1,
        JobStatus.WAITING: 1,
    }
    await _jobs_ahead_follow_dequeue_order(backend, now)


async def _jobs_ahead_follow_dequeue_order(backend: Backend, now: datetime) -> None:
    """For every ready job, the dashboard counts the jobs the core's order puts first."""
    projected = await backend.projected_jobs()
    browser = backend.browser()
    ready: list[JobInfo] = [job for job in projected.values() if job.status is JobStatus.ENQUEUED]
    assert len(ready) > 3
    for job in ready:
        shown = await backend.get_job(QueueCtx(job.tenant_id), job.job_id)  # tenant positions
        assert await browser.jobs_ahead(shown, now) == jobs_ahead(job, projected.values(), now)
