"""The deploy hold: a job no code here can run (an unknown type, a payload that does not
decode) is probably for a newer deploy. It is held a moment and given back, and its
tenant is skipped briefly so other processes can take it, until the deploy grace period
after it was due ends; then it fails for good."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import JobCanceled, LeaseLost, QueueError
from dogqueue.jobs import JobError
from dogqueue.observability.outcome import Outcome
from dogqueue.worker.running import RunningJob
from dogqueue.worker.settings import DEPLOY_YIELD_SECONDS

#: Records a failed attempt: (job, error text, retry?) -> the job's status, or None.
FailJob = Callable[[RunningJob, str, bool], Awaitable[str | None]]


class DeployHold:
    """Holds and gives back the jobs this worker cannot run; remembers the tenants it
    is yielding to other workers. Times are the event loop's."""

    def __init__(self, backend: Backend, grace: timedelta, hold_seconds: float) -> None:
        self._backend = backend
        self._grace = grace
        self._hold_seconds = hold_seconds
        #: Tenants whose unrunnable job was just given back, until when (loop time).
        self._yielding: dict[str, float] = {}
        #: Counters of what this worker did besides running jobs.
        self.counters: dict[str, int] = {"not_runnable_released": 0, "not_runnable_failed": 0}

    def yielding(self, now: float) -> set[str]:
        """The tenants to lease nothing of at loop time `now`."""
        if self._yielding:
            self._yielding = {t: until for t, until in self._yielding.items() if until > now}
        return set(self._yielding)

    async def handle(
        self, job: RunningJob, error: QueueError | JobError, fail: FailJob
    ) -> tuple[Outcome, str]:
        """Hold the job a moment and give it back for a newer worker, until the deploy
        grace period after it was due ends; then fail it with `fail`. Return the outcome
        and why, for the outcome's log line (the stored failure has the full error; a
        decoder's error can quote the payload, so the line does not)."""
        reason = str(error) if isinstance(error, QueueError) else error.message
        shown = reason if isinstance(error, QueueError) else "its payload does not decode"
        info = await self._backend.get_job(job.ctx, job.lease.job_id)
        due = info.message.run_at or info.created_at
        grace_ends = due + self._grace
        if self._backend.clock() >= grace_ends:
            within = f"no worker could run it within the deploy grace period of {self._grace}"
            await fail(job, f"{reason} ({within})", False)
            self.counters["not_runnable_failed"] += 1
            return Outcome.FAILED, f"cannot run here: {shown} ({within})"
        given_back = (
            f"cannot run here: {shown}; given back for a newer worker"
            f" (until {grace_ends.isoformat()})"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.stopped.wait(), self._hold_seconds)
        stopped = job.stop_reason
        if stopped is not None and stopped.discards:
            outcome = stopped.outcome
            assert outcome is not None
            return outcome, f"{given_back}; {stopped} while held"
        try:
            said = f"no worker can run this type here ({reason})"
            await self._backend.release(job.ctx, job.lease, reason=said, until=grace_ends)
        except (JobCanceled, LeaseLost) as refused:
            return Outcome.RELEASED, f"{given_back}; not released: {refused}"
        loop_now = asyncio.get_running_loop().time()
        self._yielding[job.ctx.tenant_id] = loop_now + DEPLOY_YIELD_SECONDS
        self.counters["not_runnable_released"] += 1
        return Outcome.RELEASED, given_back
