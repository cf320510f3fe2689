"""Logs for the audit tests: a small story touching every event type, and bulk logs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dogqueue import FakeClock, JobMessage, JobPriority, QueueCtx
from dogqueue.backend.base import EngineBackend

ACME = QueueCtx("acme")
GLOBEX = QueueCtx("globex")


def message(job_type: str = "email", **options: object) -> JobMessage:
    """A job message with a small JSON payload."""
    return JobMessage(job_type=job_type, payload_bytes=b'{"to": "a@example.com"}', **options)  # type: ignore[arg-type]


async def write_story(backend: EngineBackend, clock: FakeClock) -> dict[str, str]:
    """Jobs in every situation, across two tenants; returns their ids by role."""
    ids: dict[str, str] = {}
    ids["completed"] = await backend.enqueue(ACME, message(idempotency_key="order-1"))
    ids["retried"] = await backend.enqueue(ACME, message("report", max_retries=1))
    ids["canceled"] = await backend.enqueue(ACME, message("resize", queue="images"))
    ids["scheduled"] = await backend.enqueue(
        ACME, message(run_at=clock() + timedelta(hours=2), priority=JobPriority.LOW)
    )
    ids["other_tenant"] = await backend.enqueue(GLOBEX, message("invoice"))

    clock.advance(timedelta(seconds=1))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None and lease.job_id == ids["completed"]
    await backend.heartbeat(ACME, lease)
    clock.advance(timedelta(seconds=2))
    await backend.ack_complete(ACME, lease, b"sent")

    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None and lease.job_id == ids["retried"]
    await backend.release(ACME, lease)
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    await backend.ack_fail(ACME, lease, "timeout talking to SMTP")
    clock.advance(timedelta(minutes=5))
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None and lease.job_id == ids["retried"]
    clock.advance(timedelta(minutes=10))  # the lease runs out: the last attempt expires
    await backend.reap_expired()

    await backend.cancel_job(ACME, ids["canceled"])
    lease = await backend.dequeue(GLOBEX, ["default"])
    assert lease is not None
    ids["leased"] = lease.job_id
    ids["waiting"] = await backend.enqueue(ACME, message())
    ids["waiting_behind"] = await backend.enqueue(ACME, message())
    return ids


async def write_bulk(backend: EngineBackend, clock: FakeClock, jobs: int, tenants: int = 3) -> None:
    """About 3 events per job (enqueued, leased, completed) spread over `tenants`."""
    batch = 500
    for start in range(0, jobs, batch):
        count = min(batch, jobs - start)
        ctx = QueueCtx(f"tenant-{(start // batch) % tenants}")
        await backend.enqueue_many(ctx, [message() for _ in range(count)])
        clock.advance(timedelta(milliseconds=1))
        leases = await backend.dequeue_many(ctx, ["default"], count)
        await asyncio.gather(*(backend.ack_complete(ctx, lease) for lease in leases))
