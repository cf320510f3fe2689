"""Running one job's code and acknowledging how it ended."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, NamedTuple

from dogqueue.backend.contract import Backend
from dogqueue.client.run import JobRun, set_current_run
from dogqueue.core.errors import JobCanceled, LeaseLost
from dogqueue.core.job import Completion, Failure
from dogqueue.jobs import BaseJob, Job, JobError, SyncJob, encode_json, execute_call
from dogqueue.observability.outcome import Outcome
from dogqueue.worker.running import (
    Execution,
    RunningJob,
    StopReason,
    absorb_cancels,
    failure_outcome,
)
from dogqueue.worker.settler import Settler
from dogqueue.worker.threads import Interruptible, SyncJobThreads
from dogqueue.worker.tracebacks import format_error


class Settled(NamedTuple):
    """How a job's execution ended, as settled: its outcome, the job's own error, and
    why it was stopped (text that holds no payload data)."""

    outcome: Outcome
    error: BaseException | None
    reason: str | None


class Executor:
    """Runs jobs' `execute` in their runner tasks (synchronous ones on `threads`) and
    settles their outcomes in batches."""

    def __init__(self, backend: Backend, lease_duration: timedelta, sync_threads: int) -> None:
        self._backend = backend
        self._lease_duration = lease_duration
        self._sync_threads = sync_threads
        self._threads: SyncJobThreads | None = None
        #: Batches the acknowledgements of jobs that finish close together.
        self.settler = Settler(backend)

    def start(self) -> None:
        """Make the thread slots of synchronous jobs (on the running loop)."""
        self._threads = SyncJobThreads(self._sync_threads)

    async def execute_here(
        self,
        job: RunningJob,
        decoded: BaseJob[Any, Any],
        context: Any,
        limit: timedelta | None,
    ) -> Execution:
        """Run the job's `execute` in this task, the job's runner (no task of its own:
        `job.interrupt` cancels the runner while it executes, and a timer interrupts it
        once `limit` has passed), and return how it ended.

        A CancelledError the job raises itself is its own ending ("cancelled from inside
        the job"); a cancellation of the runner that the worker did not request (asyncio
        tearing the loop down) ends the runner without an acknowledgement."""
        runner = job.runner
        assert runner is not None
        job.run = JobRun(self._backend, job.ctx, job.lease, self._lease_duration, job.set_lease)
        set_current_run(job.run)  # in the runner's own context: the job reads it there
        if isinstance(decoded, SyncJob):
            job.interruptible = Interruptible()
        timer = None
        if limit is not None:
            timer = asyncio.get_running_loop().call_later(
                limit.total_seconds(), job.interrupt, StopReason.TIMED_OUT
            )
        execution = Execution()
        job.executing = True
        try:
            result = await self._execute(decoded, context, job.interruptible)
            execution.result = None if result is None else encode_json(result)
        except asyncio.CancelledError:
            if job.cancels == 0 and runner.cancelling() > 0:
                raise  # the runner itself was cancelled from outside
            execution.cancelled = True
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # the job's own, or JobInterrupted
            execution.error = error
        finally:
            job.executing = False
            if timer is not None:
                timer.cancel()
        if job.cancels:
            await absorb_cancels(runner, job.cancels)
        return execution

    def _execute(
        self, job: BaseJob[Any, Any], context: Any, interruptible: Interruptible | None
    ) -> Awaitable[Any]:
        """The job's `execute` to await (on a thread of its own when it is synchronous).
        A plain function, not a coroutine: one coroutine per job fewer."""
        if isinstance(job, SyncJob):
            assert self._threads is not None and interruptible is not None
            run_context = contextvars.copy_context()
            return self._threads.run(
                functools.partial(run_context.run, execute_call(job, context)), interruptible
            )
        if isinstance(job, Job):
            awaitable: Awaitable[Any] = execute_call(job, context)()
            return awaitable
        raise JobError(f"{type(job).__name__} is neither a Job nor a SyncJob", retryable=False)

    async def settle(
        self, job: RunningJob, execution: Execution | None, limit: timedelta | None
    ) -> Settled:
        """Acknowledge how the job's execution ended (or its interruption); return the
        outcome, the job's error and why it was stopped (for the one outcome line)."""
        reason = job.stop_reason
        if reason is not None and reason.discards:
            outcome = reason.outcome
            assert outcome is not None
            return Settled(outcome, None, f"{reason}; its result is discarded")
        if reason is StopReason.SHUTDOWN:
            try:
                await self._backend.release(job.ctx, job.lease)
            except (JobCanceled, LeaseLost) as refused:
                return Settled(Outcome.RELEASED, None, f"shutdown; not released: {refused}")
            return Settled(Outcome.RELEASED, None, "released at shutdown")
        if reason is StopReason.TIMED_OUT:
            status = await self.fail(job, f"timed out after {limit}", True)
            return Settled(failure_outcome(status), None, f"timed out after {limit}")
        if execution is None:
            return Settled(Outcome.NOT_STARTED, None, None)
        if execution.cancelled:
            status = await self.fail(job, "cancelled from inside the job", True)
            return Settled(failure_outcome(status), None, "cancelled from inside the job")
        if (error := execution.error) is not None:
            if isinstance(error, JobError):
                status = await self.fail(job, error.message, error.retryable)
            else:
                status = await self.fail(job, format_error(error), True)
            return Settled(failure_outcome(status), error, None)
        try:
            completion = Completion(lease=job.lease, result=execution.result)
            await self.settler.settle(job.ctx, completion)
        except (JobCanceled, LeaseLost) as refused:
            return Settled(Outcome.DISCARDED, None, f"finished, result discarded: {refused}")
        return Settled(Outcome.COMPLETED, None, None)

    async def fail(self, job: RunningJob, error: str, retry: bool) -> str | None:
        """Record a failed attempt; return the job's status after it (None when the
        lease was gone and nothing was recorded)."""
        try:
            failure = Failure(lease=job.lease, error=error, retry=retry)
            return await self.settler.settle(job.ctx, failure)
        except (JobCanceled, LeaseLost):
            return None  # the outcome line says "lost"
