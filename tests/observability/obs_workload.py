"""A small deterministic workload whose metrics the observability tests know by heart."""

from __future__ import annotations

from datetime import timedelta

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.contract import Backend

ACME = QueueCtx("acme")
GLOBEX = QueueCtx("globex")


def message(job_type: str, *, queue: str = "default", **options: object) -> JobMessage:
    """A message whose payload is a marker the log tests look for."""
    return JobMessage(
        job_type=job_type,
        payload_bytes=b'{"secret":"payload-marker"}',
        queue=queue,
        **options,  # type: ignore[arg-type]
    )


async def run_workload(backend: Backend, clock: FakeClock) -> None:
    """acme/default/email: 2 completed (2 s and 4 s), 1 failed once and scheduled to retry.
    acme/reports/report: 1 dead (no retries), 1 scheduled an hour ahead, 1 canceled,
    1 ready since the start. globex/default/email: 1 lease expired (retry scheduled),
    1 ready, 1 leased now."""
    for _ in range(3):
        await backend.enqueue(ACME, message("email"))
    await backend.enqueue(ACME, message("report", queue="reports", max_retries=0))
    await backend.enqueue(ACME, message("report", queue="reports"))  # stays ready
    await backend.enqueue(
        ACME, message("report", queue="reports", run_at=clock() + timedelta(hours=1))
    )
    canceled = await backend.enqueue(ACME, message("report", queue="reports"))
    await backend.cancel_job(ACME, canceled)

    clock.advance(timedelta(seconds=1))
    for seconds in (2, 4):
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None
        clock.advance(timedelta(seconds=seconds))
        await backend.ack_complete(ACME, lease, b"1")
    lease = await backend.dequeue(ACME, ["default"])
    assert lease is not None
    clock.advance(timedelta(seconds=1))
    await backend.ack_fail(ACME, lease, "flaky", retry=True)

    dead = await backend.dequeue(ACME, ["reports"])
    assert dead is not None and dead.message.max_retries == 0
    await backend.ack_fail(ACME, dead, "boom", retry=True)

    await backend.enqueue(GLOBEX, message("email"))
    await backend.enqueue(GLOBEX, message("email"))
    await backend.enqueue(GLOBEX, message("email"))
    expiring = await backend.dequeue(GLOBEX, ["default"], lease_duration=timedelta(seconds=10))
    assert expiring is not None
    clock.advance(timedelta(seconds=11))
    assert await backend.reap_expired() == 1
    running = await backend.dequeue(GLOBEX, ["default"])
    assert running is not None
