"""The run a job is part of: who it runs for, which attempt, until when; progress and
lease extension. Read it inside `execute` with `current_run()`."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, TypeVar

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import InvalidInput
from dogqueue.core.job import LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.workflow import parent_results

log = logging.getLogger("dogqueue.jobs")

#: Guards the lazy creation of each run's `stop_requested` event.
_EVENT_LOCK = threading.Lock()

T = TypeVar("T")


class JobRun:
    """One attempt of one job, as the worker runs it.

    `tenant_id`, `job_id`, `attempt` (1 for the first), `max_attempts`, `lease_deadline`
    (when the lease ends unless extended) and `token` (the lease's fencing token) describe
    the run; `report_progress` and `extend_lease` act on it.
    """

    __slots__ = (
        "_backend",
        "_lease",
        "_lease_duration",
        "_loop",
        "_on_lease",
        "_stop_requested",
        "_stopping",
        "ctx",
        "progress",
    )

    def __init__(
        self,
        backend: Backend,
        ctx: QueueCtx,
        lease: LeasedJob,
        lease_duration: timedelta,
        on_lease: Callable[[LeasedJob], None] | None = None,
    ) -> None:
        self._backend = backend
        self.ctx = ctx
        self._lease = lease
        self._lease_duration = lease_duration
        self._on_lease = on_lease
        self._loop = asyncio.get_running_loop()
        # Made on first read of `stop_requested` (a threading.Event costs a lock and a
        # condition; most jobs never look at it).
        self._stop_requested: threading.Event | None = None
        self._stopping = False
        #: The latest progress reported: (fraction done from 0 to 1, message).
        self.progress: tuple[float, str | None] | None = None

    @property
    def stop_requested(self) -> threading.Event:
        """Set when the worker stops this run (canceled, lease lost, timed out,
        shutdown): a synchronous job, which cannot be interrupted, may check it and
        return early."""
        event = self._stop_requested
        if event is None:
            with _EVENT_LOCK:  # the job's thread and the loop may both read it first
                event = self._stop_requested
                if event is None:
                    event = self._stop_requested = threading.Event()
            # After publishing the event: a `request_stop` that did not see it has
            # already set `_stopping`.
            if self._stopping:
                event.set()
        return event

    def request_stop(self) -> None:
        """Set `stop_requested` (the worker calls it when it stops the run)."""
        self._stopping = True
        event = self._stop_requested
        if event is not None:
            event.set()

    @property
    def tenant_id(self) -> str:
        """The tenant the job runs for."""
        return self.ctx.tenant_id

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._lease.job_id

    @property
    def job_type(self) -> str:
        """The job's JOB_TYPE."""
        return self._lease.message.job_type

    @property
    def queue(self) -> str:
        """The queue the job was enqueued in."""
        return self._lease.message.queue

    @property
    def parent_ids(self) -> tuple[str, ...]:
        """The jobs this one ran after (`JobMessage.after`), in order."""
        return self._lease.message.after

    async def parent_results(self, result_type: type[T]) -> dict[str, T | None]:
        """The results of this job's completed parents, decoded as `result_type`, by
        parent id in `after` order (a parent that failed or was canceled, which a job
        with `on_parent_failure="run"` may see, is left out)."""
        parents = [await self._backend.get_job(self.ctx, parent) for parent in self.parent_ids]
        return parent_results(parents, result_type)

    def parent_results_blocking(self, result_type: type[T]) -> dict[str, T | None]:
        """`parent_results` for a synchronous job (called from its worker thread)."""
        return self._blocking(self.parent_results(result_type))

    @property
    def attempt(self) -> int:
        """This attempt's number: 1 for the first."""
        return self._lease.attempt

    @property
    def max_attempts(self) -> int:
        """Attempts the job gets in all: 1 + its max retries."""
        return 1 + self._lease.message.max_retries

    @property
    def is_last_attempt(self) -> bool:
        """Whether a retryable failure of this attempt fails the job for good."""
        return self.attempt >= self.max_attempts

    @property
    def lease_deadline(self) -> datetime:
        """When the lease ends unless it is extended (the worker extends it on its own)."""
        return self._lease.lease_expires_at

    @property
    def token(self) -> int:
        """The lease's fencing token."""
        return self._lease.lease_token

    @property
    def lease(self) -> LeasedJob:
        """The lease as last extended."""
        return self._lease

    def set_lease(self, lease: LeasedJob) -> None:
        """Keep the lease as last extended (the worker calls it after each heartbeat)."""
        self._lease = lease
        if self._on_lease is not None:
            self._on_lease(lease)

    async def extend_lease(self, duration: timedelta | None = None) -> datetime:
        """Extend the lease now, to `duration` (the worker's lease duration by default)
        from now, appending a heartbeat event; return the new deadline. Raises
        JobCanceled or LeaseLost when the run may no longer finish."""
        if duration is not None and (
            not isinstance(duration, timedelta) or duration <= timedelta(0)
        ):
            raise InvalidInput("duration", "must be a positive timedelta")
        lease = await self._backend.heartbeat(
            self.ctx, self._lease, lease_duration=duration or self._lease_duration
        )
        self.set_lease(lease)
        return lease.lease_expires_at

    async def report_progress(self, done: float, message: str | None = None) -> None:
        """Report how far the job is (`done` from 0.0 to 1.0, with an optional message):
        kept on the run, logged, and recorded in the job's history in a heartbeat event
        (which also extends the lease)."""
        if isinstance(done, bool) or not isinstance(done, (int, float)) or not 0 <= done <= 1:
            raise InvalidInput("done", "must be a number from 0 to 1")
        if message is not None and not isinstance(message, str):
            raise InvalidInput("message", "must be a str or None")
        self.progress = (float(done), message)
        fields = {
            "tenant_id": self.tenant_id,
            "job_id": self.job_id,
            "job_type": self.job_type,
            "attempt": self.attempt,
            "progress": round(float(done), 4),
        }
        log.info(
            "job progress %s %.0f%%%s",
            " ".join(f"{k}={v}" for k, v in fields.items() if k != "progress"),
            100 * done,
            "" if message is None else f": {message}",
            extra=fields,
        )
        lease = await self._backend.heartbeat(
            self.ctx,
            self._lease,
            lease_duration=self._lease_duration,
            progress=float(done),
            progress_message=message,
        )
        self.set_lease(lease)

    # -- from a synchronous job's thread ---------------------------------------------

    def _blocking(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return call_on_loop(
            self._loop, coroutine, "run", "use the async methods inside an async job"
        )

    def extend_lease_blocking(self, duration: timedelta | None = None) -> datetime:
        """`extend_lease` for a synchronous job (called from its worker thread)."""
        return self._blocking(self.extend_lease(duration))

    def report_progress_blocking(self, done: float, message: str | None = None) -> None:
        """`report_progress` for a synchronous job (called from its worker thread)."""
        self._blocking(self.report_progress(done, message))

    def __repr__(self) -> str:
        return (
            f"JobRun(tenant_id={self.tenant_id!r}, job_id={self.job_id!r},"
            f" attempt={self.attempt}/{self.max_attempts})"
        )


def call_on_loop(
    loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T], field: str, misuse: str
) -> T:
    """Run `coroutine` on `loop` from another thread and wait for its result. Called on
    that loop itself it would wait for ever: InvalidInput(field, misuse) instead."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coroutine.close()
        raise InvalidInput(field, misuse)
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


_current: ContextVar[JobRun] = ContextVar("dogqueue_current_run")


def current_run() -> JobRun:
    """The run of the job executing now (inside `execute`, async or synchronous).
    Outside a job run by a Worker it raises LookupError."""
    try:
        return _current.get()
    except LookupError:
        raise LookupError("current_run() is only available inside a job run by a Worker") from None


def set_current_run(run: JobRun) -> None:
    """Make `run` the current run of this context (the worker does, per job task)."""
    _current.set(run)
