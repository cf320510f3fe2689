"""Keeping running jobs' leases and hearing of their cancels: heartbeats started by one
shared timer, and a periodic read of the running jobs' states."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import JobCanceled, LeaseLost, QueueError
from dogqueue.core.status import JobStatus
from dogqueue.observability.logging import log_unexpected
from dogqueue.worker.running import RunningJob, RunningJobs, StopReason

log = logging.getLogger("dogqueue.worker")


class Heartbeats:
    """Extends the leases of the running `jobs` every `interval` seconds (from one
    interval after each job starts) and stops a job whose lease is lost or canceled."""

    def __init__(
        self,
        backend: Backend,
        jobs: RunningJobs,
        lease_duration: timedelta,
        interval: float,
        error_text: bool = True,
    ) -> None:
        self._backend = backend
        self._jobs = jobs
        self._lease_duration = lease_duration
        self._interval = interval
        self._error_text = error_text
        #: Starts the heartbeats of the running jobs that are due one.
        self._timer: asyncio.TimerHandle | None = None

    def want(self, job: RunningJob) -> None:
        """Have the job's heartbeat start one interval from now, unless it ends sooner.
        One timer serves every running job (a timer per job costs more than most jobs)."""
        loop = asyncio.get_running_loop()
        job.beat_due = loop.time() + self._interval
        if self._timer is None:
            self._timer = loop.call_at(job.beat_due, self._start_due)

    def close(self) -> None:
        """Start no more heartbeats."""
        if self._timer is not None:
            self._timer.cancel()

    def _start_due(self) -> None:
        """Start the heartbeat of each running job whose time has come; set the timer
        for the next one."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_due: float | None = None
        for job in self._jobs.values():
            due = job.beat_due
            if due is None or job.beat is not None:
                continue
            if due <= now:
                job.beat = loop.create_task(self._beat(job))
            elif next_due is None or due < next_due:
                next_due = due
        if next_due is not None:
            self._timer = loop.call_at(next_due, self._start_due)

    async def _beat(self, job: RunningJob) -> None:
        """Extend the job's lease now and every heartbeat interval."""
        while True:
            try:
                lease = await self._backend.heartbeat(
                    job.ctx, job.lease, lease_duration=self._lease_duration
                )
                job.set_lease(lease)
                if job.run is not None:
                    job.run.set_lease(lease)
            except JobCanceled:
                job.interrupt(StopReason.CANCELED)
                return
            except LeaseLost:
                job.interrupt(StopReason.LEASE_LOST)
                return
            except QueueError as error:
                what = f"heartbeat of job {job.label} failed; trying again"
                log_unexpected(log, what, error, self._error_text)
            await asyncio.sleep(self._interval)


async def check_cancels_forever(backend: Backend, jobs: RunningJobs, interval: float) -> None:
    """Read the state of the running `jobs` every `interval` seconds and stop those
    canceled meanwhile (by any process) and still running when the read returns. The
    job's outcome line says it was canceled; nothing is logged here, so no line can
    arrive after the job stopped."""
    while True:
        await asyncio.sleep(interval)
        running = [job for job in jobs.values() if job.stop_reason is None]
        if not running:
            continue
        states = await asyncio.gather(
            *(backend.get_job(job.ctx, job.lease.job_id) for job in running),
            return_exceptions=True,
        )
        for job, state in zip(running, states, strict=True):
            if isinstance(state, BaseException):
                if not isinstance(state, QueueError):
                    raise state
                continue
            if state.status is JobStatus.CANCELED and jobs.get(job.key) is job:
                job.interrupt(StopReason.CANCELED)


def cancel_listener(jobs: RunningJobs) -> Callable[[str, str], None]:
    """A listener for a backend's in-process cancels that stops the canceled job."""

    def on_cancel(tenant_id: str, job_id: str) -> None:
        for (tenant, running_id, _), job in jobs.items():
            if (tenant, running_id) == (tenant_id, job_id):
                job.interrupt(StopReason.CANCELED)

    return on_cancel
