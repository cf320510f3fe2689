"""A job this worker runs: its lease, its runner task, and why it was stopped."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Mapping
from typing import Any

from dogqueue.client.run import JobRun
from dogqueue.core.job import LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.observability.outcome import Outcome
from dogqueue.worker.threads import Interruptible

#: A worker's running jobs, by tenant, job id and lease token.
RunningJobs = Mapping[tuple[str, str, int], "RunningJob"]


class StopReason(enum.StrEnum):
    """Why a running job's task was stopped before it finished."""

    #: Someone canceled the job.
    CANCELED = "canceled"
    #: The job's lease expired or another worker holds it now.
    LEASE_LOST = "lease lost"
    #: The job ran longer than its timeout.
    TIMED_OUT = "timed out"
    #: The worker is stopping and the grace period is over.
    SHUTDOWN = "shutdown"

    @property
    def discards(self) -> bool:
        """Whether the job's result is thrown away unacknowledged (the log already
        says what became of the job)."""
        return self in (StopReason.CANCELED, StopReason.LEASE_LOST)

    @property
    def outcome(self) -> Outcome | None:
        """The outcome of an execution this stopped; None for a timeout, a failed
        attempt whose outcome depends on the retries left."""
        return _STOP_OUTCOMES.get(self)


#: The one place a stop reason becomes an outcome.
_STOP_OUTCOMES = {
    StopReason.CANCELED: Outcome.CANCELED,
    StopReason.LEASE_LOST: Outcome.LEASE_LOST,
    StopReason.SHUTDOWN: Outcome.RELEASED,
}


class Execution:
    """How a job's `execute` ended: its encoded result, its error, or cancelled by
    the job itself."""

    __slots__ = ("cancelled", "error", "result")

    def __init__(self) -> None:
        self.result: bytes | None = None
        self.error: BaseException | None = None
        self.cancelled = False


class RunningJob:
    """A leased job this worker is running, and why it was stopped, if it was.

    The job's `execute` runs inside the runner task itself: `interrupt` stops it by
    cancelling that task while it executes (counted in `cancels`, so the runner can
    tell its own cancellations from one that comes from outside)."""

    __slots__ = (
        "_label",
        "_stopped",
        "beat",
        "beat_due",
        "cancels",
        "ctx",
        "executing",
        "interruptible",
        "key",
        "lease",
        "run",
        "runner",
        "stop_reason",
    )

    def __init__(self, ctx: QueueCtx, lease: LeasedJob) -> None:
        self.ctx = ctx
        self.lease = lease
        #: How the worker files the job: tenant, job id, lease token (a heartbeat keeps
        #: the token).
        self.key = (ctx.tenant_id, lease.job_id, lease.lease_token)
        self.runner: asyncio.Task[None] | None = None
        self.stop_reason: StopReason | None = None
        self.run: JobRun | None = None
        #: The thread of a synchronous job, to interrupt it when the job is stopped
        #: (made when a synchronous job starts: most jobs never need one).
        self.interruptible: Interruptible | None = None
        #: Whether the runner is inside the job's `execute` now.
        self.executing = False
        #: Cancellations of the runner that `interrupt` requested.
        self.cancels = 0
        #: When (loop time) the heartbeat task is to start, while the job wants one.
        self.beat_due: float | None = None
        #: The heartbeat task, once started.
        self.beat: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        self._label: str | None = None

    @property
    def label(self) -> str:
        """How log lines name the job: tenant/id type#attempt."""
        if self._label is None:
            lease = self.lease
            self._label = (
                f"{self.ctx.tenant_id}/{lease.job_id} {lease.message.job_type}#{lease.attempt}"
            )
        return self._label

    @property
    def stopped(self) -> asyncio.Event:
        """Set once the job is stopped (made on first use: few jobs wait for it)."""
        if self._stopped is None:
            self._stopped = asyncio.Event()
            if self.stop_reason is not None:
                self._stopped.set()
        return self._stopped

    def interrupt(self, reason: StopReason) -> None:
        """Stop the job; the first reason given wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._stopped is not None:
            self._stopped.set()
        if self.interruptible is not None:
            self.interruptible.interrupt()
        if self.run is not None:
            self.run.request_stop()
        if self.executing and self.runner is not None:
            self.cancels += 1
            self.runner.cancel()

    def set_lease(self, lease: LeasedJob) -> None:
        """Keep the lease as last extended (by the heartbeat or by the job itself)."""
        self.lease = lease

    def stop_heartbeat(self) -> None:
        """The job wants no heartbeat any more (a beat in flight is cancelled)."""
        self.beat_due = None
        if self.beat is not None:
            self.beat.cancel()


async def absorb_cancels(runner: asyncio.Task[Any], cancels: int) -> None:
    """Take back the `cancels` cancellations `interrupt` requested of `runner` (the
    current task): one still pending (requested after the job's last await) lands here,
    not in what the runner does next. Re-raise a cancellation from outside."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0)
    for _ in range(cancels):
        runner.uncancel()
    if runner.cancelling() > 0:
        raise asyncio.CancelledError


def failure_outcome(status: str | None) -> Outcome:
    """A failed attempt's outcome: retrying, failed (for good) or lost (not recorded)."""
    if status is None:
        return Outcome.LOST
    return Outcome.RETRYING if status == JobStatus.ENQUEUED else Outcome.FAILED
