"""The worker runtime: lease jobs fairly across tenants, run them with heartbeats and
timeouts, acknowledge the outcome, and shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from types import FrameType, TracebackType
from typing import Any, Generic, Protocol, Self, runtime_checkable

from dogqueue.adapter import QueueAdapter
from dogqueue.core import validation as check
from dogqueue.core.errors import (
    InvalidInput,
    InvalidJobType,
    JobCanceled,
    LeaseLost,
    QueueError,
)
from dogqueue.core.job import Completion, Failure, LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.jobs import BaseJob, ContextT, Job, JobError, PayloadError, SyncJob, encode_json
from dogqueue.observability.execution import observe_execution
from dogqueue.observability.outcome import Outcome
from dogqueue.runtime.fairness import TenantRotation
from dogqueue.runtime.queues import QueueDiscovery
from dogqueue.runtime.results import job_settled
from dogqueue.runtime.run import JobRun, set_current_run
from dogqueue.runtime.settler import Settler
from dogqueue.runtime.threads import Interruptible, SyncJobThreads
from dogqueue.schedules import Schedule, check_schedules, enqueue_due

log = logging.getLogger("dogqueue.worker")
log.addHandler(logging.NullHandler())  # a library logs only where the application says

#: How long discovered tenants are trusted before `ready_tenants` is asked again.
TENANT_REFRESH_SECONDS = 1.0
#: The shortest idle wait, so a due job that cannot be leased yet never spins the loop.
MIN_IDLE_SECONDS = 0.05
#: Frames of a traceback kept in a failed event, and the longest error text stored.
ERROR_FRAMES = 8
MAX_ERROR_CHARS = 4_000

#: How often the worker reads the state of its own running jobs to see cancels made by
#: other processes (cheap: one read per running job), so a cancel lands within ~2 s.
CANCEL_CHECK_SECONDS = 0.5
#: A loop blocked this long gets a warning naming the job that blocks it.
BLOCKED_LOOP_SECONDS = 1.0
#: How long a job nobody here can run (unknown type, payload that does not decode) is
#: given back for a newer worker before it fails, and how long it is held each time.
DEPLOY_GRACE = timedelta(minutes=10)
DEPLOY_HOLD = timedelta(seconds=5)
#: After giving such a job back, the worker leases nothing of that tenant for this long,
#: so workers of other processes (which see the release within ~20 ms) can take it.
DEPLOY_YIELD_SECONDS = 0.5

#: While waiting for the clock's next minute boundary, the schedule loop rereads the
#: clock this often (reading it costs nothing; a fake clock moved by a test is seen).
SCHEDULE_RECHECK_SECONDS = 1.0

#: Why a running job's task was stopped before it finished.
CANCELED, LEASE_LOST, TIMED_OUT, SHUTDOWN = "canceled", "lease lost", "timed out", "shutdown"


@runtime_checkable
class CancelNotifier(Protocol):
    """A backend that reports, in-process, each committed `cancel_job`."""

    def add_cancel_listener(
        self, listener: Callable[[str, str], None]
    ) -> Callable[[], None]: ...  # pragma: no cover


class _Execution:
    """How a job's `execute` ended: its encoded result, its error, or cancelled by
    the job itself."""

    __slots__ = ("cancelled", "error", "result")

    def __init__(self) -> None:
        self.result: bytes | None = None
        self.error: BaseException | None = None
        self.cancelled = False


def _stop_heartbeat(job: _RunningJob) -> None:
    """The job wants no heartbeat any more (a beat in flight is cancelled)."""
    job.beat_due = None
    if job.beat is not None:
        job.beat.cancel()


async def _absorb_cancels(runner: asyncio.Task[Any], cancels: int) -> None:
    """Take back the `cancels` cancellations `interrupt` requested of `runner` (the
    current task): one still pending (requested after the job's last await) lands here,
    not in what the runner does next. Re-raise a cancellation from outside."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0)
    for _ in range(cancels):
        runner.uncancel()
    if runner.cancelling() > 0:
        raise asyncio.CancelledError


class _RunningJob:
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
        "lease",
        "run",
        "runner",
        "stop_reason",
    )

    def __init__(self, ctx: QueueCtx, lease: LeasedJob) -> None:
        self.ctx = ctx
        self.lease = lease
        self.runner: asyncio.Task[None] | None = None
        self.stop_reason: str | None = None
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

    def interrupt(self, reason: str) -> None:
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


def _seconds(name: str, value: timedelta) -> float:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidInput(name, "must be a positive timedelta")
    return value.total_seconds()


def _failure_outcome(status: str | None) -> Outcome:
    """A failed attempt's outcome: retrying, failed (for good) or lost (not recorded)."""
    if status is None:
        return Outcome.LOST
    return Outcome.RETRYING if status == JobStatus.ENQUEUED else Outcome.FAILED


def first_line(error: BaseException) -> str:
    """The first line of the error's text (what a log line shows)."""
    text = error.message if isinstance(error, JobError) else str(error)
    lines = text.strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def summarize_error(error: BaseException) -> str:
    """The error's type and message, and where it was raised (the innermost frames)."""
    frames = traceback.extract_tb(error.__traceback__)[-ERROR_FRAMES:]
    lines = [f"{type(error).__name__}: {error}"]
    lines += [f"  at {f.filename}:{f.lineno} in {f.name}" for f in frames]
    return "\n".join(lines)[:MAX_ERROR_CHARS]


class Worker(Generic[ContextT]):
    """Runs the jobs of some tenants (or of every tenant with ready work) until stopped.

    `tenants=None` serves every tenant with ready jobs, in turn. `concurrency` bounds
    the jobs running at once; `tenant_concurrency` bounds them per tenant. A job runs
    at most `timeout` (or its class's `TIMEOUT`); its lease is extended every
    `heartbeat_interval` (a third of the lease by default). A canceled job's task is
    cancelled: at once when canceled through this process's backend (or a backend that
    notifies cancels), otherwise within `cancel_check_interval`, when the worker reads
    the state of its own running jobs. `stop()` (or SIGTERM/SIGINT when `run()` is in the
    main thread) stops leasing, lets running jobs finish within the grace period, then
    gives back the leases of those still running.

    Jobs get `context`, or `context_factory(tenant_ctx)` (made once per tenant, possibly
    awaitable); `on_startup(worker)` and `on_shutdown(worker)` run around `run()`.
    Synchronous jobs (`SyncJob`, plain-`def` function jobs) run on threads of their own,
    at most `sync_threads` at once; a stopped one is interrupted (JobInterrupted). An
    event loop blocked for `blocked_loop_warning` is logged
    with the job that blocks it. A job no code here can run (unknown type, payload that
    does not decode) is held for `deploy_hold` and given back, so a newer worker can
    take it, until `deploy_grace` after it was due; then it fails for good.

    `schedules` (dogqueue.Schedule) are run too: their due ticks are enqueued when the
    worker starts and at every minute boundary of the backend's clock (any number of
    workers may run the same schedules: each tick is enqueued once).
    """

    def __init__(
        self,
        adapter: QueueAdapter[ContextT],
        *,
        tenants: Sequence[QueueCtx] | None = None,
        queues: Sequence[str] | str = ("default",),
        context: Any = None,
        concurrency: int = 10,
        tenant_concurrency: int | None = None,
        lease_duration: timedelta | None = None,
        heartbeat_interval: timedelta | None = None,
        timeout: timedelta | None = None,
        reaper_interval: timedelta | None = None,
        shutdown_grace: timedelta = timedelta(seconds=30),
        max_idle: timedelta = timedelta(seconds=5),
        fast_cancel: bool = True,
        handle_signals: bool = True,
        context_factory: Callable[[QueueCtx], Any] | None = None,
        on_startup: Callable[[Worker[ContextT]], Awaitable[None]] | None = None,
        on_shutdown: Callable[[Worker[ContextT]], Awaitable[None]] | None = None,
        cancel_check_interval: timedelta | None = timedelta(seconds=CANCEL_CHECK_SECONDS),
        sync_threads: int = 8,
        blocked_loop_warning: timedelta | None = timedelta(seconds=BLOCKED_LOOP_SECONDS),
        deploy_grace: timedelta = DEPLOY_GRACE,
        deploy_hold: timedelta = DEPLOY_HOLD,
        schedules: Sequence[Schedule] | None = None,
    ) -> None:
        if not isinstance(adapter, QueueAdapter):
            raise InvalidInput("adapter", "must be a QueueAdapter")
        #: The schedules whose ticks this worker enqueues.
        self.schedules = [] if schedules is None else check_schedules(schedules)
        self.adapter = adapter
        self.backend = adapter.backend
        #: Whether the worker serves every queue in use (`queues="*"`).
        self.all_queues = queues == "*" or (
            isinstance(queues, (list, tuple)) and list(queues) == ["*"]
        )
        self.queues = ("default",) if self.all_queues else check.check_queues(queues)
        self._discovery = QueueDiscovery(self.backend) if self.all_queues else None
        self._discovered_at = -1.0
        if tenants is None:
            self.tenants: list[QueueCtx] | None = None
        else:
            if isinstance(tenants, (str, QueueCtx)) or not isinstance(tenants, Sequence):
                raise InvalidInput("tenants", "must be a list of QueueCtx or None")
            for ctx in tenants:
                check.check_ctx(ctx)
            if not tenants:
                raise InvalidInput("tenants", "must not be empty (None serves every tenant)")
            self.tenants = list(tenants)
        for name, limit in (
            ("concurrency", concurrency),
            ("tenant_concurrency", tenant_concurrency),
            ("sync_threads", sync_threads),
        ):
            if limit is None and name == "tenant_concurrency":
                continue
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidInput(name, "must be a positive int")
        self.context = context
        self.concurrency = concurrency
        config = adapter.config
        self.lease_duration = (
            config.default_lease_duration if lease_duration is None else lease_duration
        )
        lease_seconds = _seconds("lease_duration", self.lease_duration)
        self.heartbeat_seconds = (
            lease_seconds / 3
            if heartbeat_interval is None
            else _seconds("heartbeat_interval", heartbeat_interval)
        )
        self.timeout = timeout
        if timeout is not None:
            _seconds("timeout", timeout)
        self.reaper_seconds = _seconds(
            "reaper_interval",
            config.reaper_interval if reaper_interval is None else reaper_interval,
        )
        self.shutdown_grace = shutdown_grace
        if not isinstance(shutdown_grace, timedelta) or shutdown_grace < timedelta(0):
            raise InvalidInput("shutdown_grace", "must be a non-negative timedelta")
        self.max_idle_seconds = _seconds("max_idle", max_idle)
        self.fast_cancel = fast_cancel
        self.handle_signals = handle_signals
        if context is not None and context_factory is not None:
            raise InvalidInput("context_factory", "give either context or context_factory")
        if context_factory is not None and not callable(context_factory):
            raise InvalidInput("context_factory", "must be callable with a QueueCtx")
        self.context_factory = context_factory
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        #: The context made for each tenant by `context_factory`.
        self.tenant_contexts: dict[str, Any] = {}
        self.cancel_check_seconds = (
            None
            if cancel_check_interval is None
            else _seconds("cancel_check_interval", cancel_check_interval)
        )
        self.sync_threads = sync_threads
        self.blocked_loop_seconds = (
            None
            if blocked_loop_warning is None
            else _seconds("blocked_loop_warning", blocked_loop_warning)
        )
        for name, value in (("deploy_grace", deploy_grace), ("deploy_hold", deploy_hold)):
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise InvalidInput(name, "must be a non-negative timedelta")
        self.deploy_grace = deploy_grace
        self.deploy_hold_seconds = min(deploy_hold.total_seconds(), lease_seconds / 2)
        #: Counters of what this worker did besides running jobs.
        self.counters: dict[str, int] = {"not_runnable_released": 0, "not_runnable_failed": 0}
        self._threads: SyncJobThreads | None = None
        #: Tenants whose unrunnable job was just given back, until when (monotonic).
        self._yielding: dict[str, float] = {}

        #: Batches the acknowledgements of jobs that finish close together.
        self._settler = Settler(self.backend)
        self._rotation = TenantRotation(tenant_concurrency)
        self._ctxs: dict[str, QueueCtx] = {}
        if self.tenants is not None:
            self._ctxs = {ctx.tenant_id: ctx for ctx in self.tenants}
            self._rotation.replace(self._ctxs)
        self._refreshed_at = -1.0
        self._jobs: dict[tuple[str, str, int], _RunningJob] = {}
        self._wake = asyncio.Event()
        self._schedule_wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._hurry = asyncio.Event()
        self._finished = asyncio.Event()
        self._grace = shutdown_grace
        self._started = False
        self._run_task: asyncio.Task[None] | None = None
        #: Starts the heartbeats of the running jobs that are due one.
        self._beat_timer: asyncio.TimerHandle | None = None

    # -- public ----------------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many jobs this worker is running now."""
        return len(self._jobs)

    def wake(self) -> None:
        """Look for ready jobs and due schedule ticks now (e.g. after moving a fake
        clock)."""
        self._wake.set()
        self._schedule_wake.set()

    def request_stop(self, grace: timedelta | None = None) -> None:
        """Begin a graceful stop without waiting for it; a zero grace stops at once."""
        self._grace = self.shutdown_grace if grace is None else grace
        if self._stop_requested.is_set() or self._grace <= timedelta(0):
            self._hurry.set()
        self._stop_requested.set()
        self._wake.set()

    async def stop(self, grace: timedelta | None = None) -> None:
        """Stop leasing, give running jobs `grace` (default `shutdown_grace`) to finish,
        release the leases of the rest, and return once `run()` has returned."""
        self.request_stop(grace)
        if self._started:
            await self._finished.wait()

    async def __aenter__(self) -> Self:
        self._run_task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if self._run_task is not None:
            await self._run_task

    async def run(self) -> None:
        """Lease and run jobs until stopped; return after the graceful shutdown."""
        if self._started:
            raise InvalidInput("run", "a Worker runs once; make a new one")
        self._started = True
        try:
            if self._stop_requested.is_set():
                return
            await self.backend.open()
            if self.on_startup is not None:
                await self.on_startup(self)
            remove_listener: Callable[[], None] | None = None
            if self.fast_cancel and isinstance(self.backend, CancelNotifier):
                remove_listener = self.backend.add_cancel_listener(self._on_cancel)
            signals = self._install_signal_handlers()
            loop = asyncio.get_running_loop()
            self._threads = SyncJobThreads(self.sync_threads)
            helpers = [loop.create_task(self._reap_forever())]
            if self.schedules:
                helpers.append(loop.create_task(self._schedule_forever()))
            if self.cancel_check_seconds is not None:
                helpers.append(loop.create_task(self._check_cancels_forever()))
            watchdog = None
            if self.blocked_loop_seconds is not None:
                watchdog = LoopWatchdog(self, self.blocked_loop_seconds)
                helpers.append(loop.create_task(watchdog.beat_forever()))
                watchdog.start()
            try:
                await self._lease_loop()
                await self._shut_down()
            finally:
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                if watchdog is not None:
                    watchdog.stop()
                for job in list(self._jobs.values()):
                    job.interrupt(SHUTDOWN)
                runners = [job.runner for job in self._jobs.values() if job.runner is not None]
                await asyncio.gather(*runners, return_exceptions=True)
                if self._beat_timer is not None:
                    self._beat_timer.cancel()
                if remove_listener is not None:
                    remove_listener()
                self._remove_signal_handlers(signals)
                if self.on_shutdown is not None:
                    await self.on_shutdown(self)
        finally:
            self._finished.set()

    # -- leasing ---------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while not self._stop_requested.is_set():
            self._wake.clear()
            free = self.concurrency - len(self._jobs)
            if free <= 0:
                await self._wake.wait()
                continue
            if free < self.concurrency // 2:
                # Jobs settled in one batch free their slots in the same turn of the
                # loop: let them all, so that one dequeue_many leases for every slot.
                await asyncio.sleep(0)
                free = self.concurrency - len(self._jobs)
            try:
                leased = await self._lease_round(free)
            except QueueError:
                log.exception("leasing failed; retrying after a pause")
                leased = 0
                await self._idle_wait(self.max_idle_seconds)
                continue
            if leased == 0:
                await self._idle()

    async def _lease_round(self, free: int) -> int:
        """Lease up to `free` jobs, taking turns across tenants; return how many."""
        await self._refresh_tenants()
        started = 0
        now = time.monotonic()
        self._yielding = {t: until for t, until in self._yielding.items() if until > now}
        empty: set[str] = set(self._yielding)
        while started < free and not self._stop_requested.is_set():
            candidates = [t for t in self._rotation.tenants if t not in empty]
            if not candidates:
                break
            share = max(1, (free - started) // len(candidates))
            progress = False
            for tenant in self._rotation.turns():
                if tenant in empty:
                    continue
                if self._stop_requested.is_set():
                    break
                ctx = self._ctxs[tenant]
                wanted = min(share, free - started, self._rotation.room(tenant))
                leases = await self.backend.dequeue_many(
                    ctx, self.queues, wanted, lease_duration=self.lease_duration
                )
                if not leases:
                    empty.add(tenant)
                    continue
                progress = True
                for lease in leases:
                    self._start(ctx, lease)
                started += len(leases)
                if started >= free:
                    break  # before the rotation hands out the next tenant's turn
            if not progress:
                break
        if started == 0:
            # Nothing found: ask for ready tenants (and new queues) next time.
            self._refreshed_at = self._discovered_at = -1.0
        return started

    async def _refresh_queues(self) -> None:
        """With `queues="*"`: serve every queue a job was ever enqueued in."""
        if self._discovery is None:
            return
        if time.monotonic() - self._discovered_at < TENANT_REFRESH_SECONDS:
            return
        found = await self._discovery.refresh()
        self.queues = found or ("default",)
        self._discovered_at = time.monotonic()

    async def _refresh_tenants(self) -> None:
        await self._refresh_queues()
        if self.tenants is not None:
            return
        if time.monotonic() - self._refreshed_at < TENANT_REFRESH_SECONDS:
            return
        ready = await self.backend.ready_tenants(self.queues)
        for tenant in ready:
            self._ctxs.setdefault(tenant, QueueCtx(tenant))
        self._rotation.replace(ready)
        self._refreshed_at = time.monotonic()

    async def _idle(self) -> None:
        """Sleep until a job may be leasable: the earliest `run_at` comes, or the queue
        changes and a cheap read shows a job due, or `wake()`."""
        first = True
        while not self._wake.is_set():
            if self._discovery is not None:  # a new queue may be what changed
                self._discovered_at = -1.0
                await self._refresh_queues()
            due_in = await self._seconds_until_due()
            if due_in <= 0 and not first:
                return
            first = False  # a job due at once that was not leased: wait a little
            await self._idle_wait(min(self.max_idle_seconds, max(MIN_IDLE_SECONDS, due_in)))

    async def _seconds_until_due(self) -> float:
        """Seconds until the earliest `run_at` of the served queues (max idle if none)."""
        tenant_ids = None if self.tenants is None else list(self._ctxs)
        next_run_at = await self.backend.next_run_at(self.queues, tenant_ids)
        if next_run_at is None:
            return self.max_idle_seconds
        return (next_run_at - self.backend.clock()).total_seconds()

    async def _idle_wait(self, seconds: float) -> None:
        """Wait for a change in the queue, a wake-up, or `seconds`."""
        loop = asyncio.get_running_loop()
        waits = {
            loop.create_task(self.backend.wait_for_change(seconds)),
            loop.create_task(self._wake.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    # -- running one job -------------------------------------------------------------

    def _start(self, ctx: QueueCtx, lease: LeasedJob) -> None:
        job = _RunningJob(ctx, lease)
        self._jobs[(ctx.tenant_id, lease.job_id, lease.lease_token)] = job
        self._rotation.started(ctx.tenant_id)
        job.runner = asyncio.get_running_loop().create_task(self._run_job(job))

    async def _run_job(self, job: _RunningJob) -> None:
        message = job.lease.message
        # Spans, start/finish log lines (dogqueue.jobs) and the outcome of this execution.
        async with observe_execution(self.backend, job.ctx, job.lease) as observation:
            try:
                try:
                    decoded = self.adapter.job_registry.decode(message)
                except (InvalidJobType, PayloadError) as unrunnable:
                    outcome = await self._not_runnable(job, unrunnable)
                    observation.set_outcome(outcome)
                    return
                timeout = type(decoded).TIMEOUT or self.timeout
                self._want_heartbeat(job)
                execution: _Execution | None = None
                if job.stop_reason is None:
                    if self.context_factory is None:
                        context = self.context
                    else:
                        context = await self._context_for(job.ctx)
                    if job.stop_reason is None:  # not stopped while its context was made
                        execution = await self._execute_here(job, decoded, context, timeout)
                _stop_heartbeat(job)
                outcome, error = await self._settle(job, execution, timeout)
                observation.set_outcome(outcome, error)
                if error is not None:
                    fields = {
                        "tenant_id": job.ctx.tenant_id,
                        "job_id": job.lease.job_id,
                        "job_type": message.job_type,
                        "attempt": job.lease.attempt,
                        "outcome": outcome,
                        "error_type": type(error).__name__,
                    }
                    log.warning(
                        "job %s %s: %s", job.label, outcome, first_line(error), extra=fields
                    )
            except Exception as error:
                observation.set_outcome(Outcome.WORKER_ERROR, error)
                log.exception("job %s: unexpected worker error", job.label)
            finally:
                _stop_heartbeat(job)
                if job.beat is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await job.beat
                del self._jobs[(job.ctx.tenant_id, job.lease.job_id, job.lease.lease_token)]
                self._rotation.finished(job.ctx.tenant_id)
                self._wake.set()
                job_settled(self.backend)

    async def _execute_here(
        self,
        job: _RunningJob,
        decoded: BaseJob[Any, Any],
        context: Any,
        limit: timedelta | None,
    ) -> _Execution:
        """Run the job's `execute` in this task, the job's runner (no task of its own:
        `job.interrupt` cancels the runner while it executes, and a timer interrupts it
        once `limit` has passed), and return how it ended.

        A CancelledError the job raises itself is its own ending ("cancelled from inside
        the job"); a cancellation of the runner that the worker did not request (asyncio
        tearing the loop down) ends the runner without an acknowledgement."""
        runner = job.runner
        assert runner is not None
        job.run = JobRun(self.backend, job.ctx, job.lease, self.lease_duration, job.set_lease)
        set_current_run(job.run)  # in the runner's own context: the job reads it there
        if isinstance(decoded, SyncJob):
            job.interruptible = Interruptible()
        timer = None
        if limit is not None:
            timer = asyncio.get_running_loop().call_later(
                limit.total_seconds(), job.interrupt, TIMED_OUT
            )
        execution = _Execution()
        job.executing = True
        try:
            execution.result = await self._execute(decoded, context, job.interruptible)
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
            await _absorb_cancels(runner, job.cancels)
        return execution

    async def _execute(
        self, job: BaseJob[Any, Any], context: Any, interruptible: Interruptible | None
    ) -> bytes | None:
        """Run the job's `execute` (on a thread of its own when it is synchronous) and
        encode its result."""
        if isinstance(job, SyncJob):
            assert self._threads is not None and interruptible is not None
            run_context = contextvars.copy_context()
            result = await self._threads.run(
                functools.partial(run_context.run, job.execute, context), interruptible
            )
        elif isinstance(job, Job):
            result = await job.execute(context)
        else:
            raise JobError(f"{type(job).__name__} is neither a Job nor a SyncJob", retryable=False)
        return None if result is None else encode_json(result)

    async def _context_for(self, ctx: QueueCtx) -> Any:
        """The context object jobs of this tenant get."""
        if self.context_factory is None:
            return self.context
        if ctx.tenant_id not in self.tenant_contexts:
            made = self.context_factory(ctx)
            if inspect.isawaitable(made):
                made = await made
            self.tenant_contexts.setdefault(ctx.tenant_id, made)
        return self.tenant_contexts[ctx.tenant_id]

    async def _not_runnable(self, job: _RunningJob, error: QueueError | JobError) -> Outcome:
        """A job this worker has no code for: hold it a moment and give it back for a
        newer worker, until the deploy grace period after it was due ends; then fail it."""
        reason = str(error) if isinstance(error, QueueError) else error.message
        info = await self.backend.get_job(job.ctx, job.lease.job_id)
        due = info.message.run_at or info.created_at
        grace_ends = due + self.deploy_grace
        if self.backend.clock() >= grace_ends:
            text = (
                f"{reason} (no worker could run it within the deploy grace period of"
                f" {self.deploy_grace})"
            )
            await self._ack_fail(job, text, retry=False)
            self.counters["not_runnable_failed"] += 1
            log.error("job %s failed: %s", job.label, text)
            return Outcome.FAILED
        log.warning(
            "job %s cannot run here: %s; giving it back for a newer worker (until %s)",
            job.label,
            reason,
            grace_ends.isoformat(),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.stopped.wait(), self.deploy_hold_seconds)
        if job.stop_reason in (CANCELED, LEASE_LOST):
            return Outcome.CANCELED if job.stop_reason == CANCELED else Outcome.LEASE_LOST
        try:
            await self.backend.release(job.ctx, job.lease)
        except (JobCanceled, LeaseLost) as refused:
            log.info("job %s not released: %s", job.label, refused)
        self._yielding[job.ctx.tenant_id] = time.monotonic() + DEPLOY_YIELD_SECONDS
        self.counters["not_runnable_released"] += 1
        return Outcome.RELEASED

    async def _settle(
        self, job: _RunningJob, execution: _Execution | None, limit: timedelta | None
    ) -> tuple[Outcome, BaseException | None]:
        """Acknowledge how the job's execution ended (or its interruption); return the
        outcome and the job's error."""
        reason = job.stop_reason
        if reason in (CANCELED, LEASE_LOST):
            log.info("job %s stopped: %s; its result is discarded", job.label, reason)
            return (Outcome.CANCELED if reason == CANCELED else Outcome.LEASE_LOST), None
        if reason == SHUTDOWN:
            try:
                await self.backend.release(job.ctx, job.lease)
                log.info("job %s released at shutdown", job.label)
            except (JobCanceled, LeaseLost) as refused:
                log.info("job %s not released: %s", job.label, refused)
            return Outcome.RELEASED, None
        if reason == TIMED_OUT:
            status = await self._ack_fail(job, f"timed out after {limit}", retry=True)
            log.warning("job %s timed out after %s", job.label, limit)
            return _failure_outcome(status), None
        if execution is None:
            return Outcome.NOT_STARTED, None
        if execution.cancelled:
            status = await self._ack_fail(job, "cancelled from inside the job", retry=True)
            log.warning("job %s cancelled itself", job.label)
            return _failure_outcome(status), None
        if (error := execution.error) is not None:
            if isinstance(error, JobError):
                status = await self._ack_fail(job, error.message, retry=error.retryable)
            else:
                status = await self._ack_fail(job, summarize_error(error), retry=True)
            return _failure_outcome(status), error
        try:
            completion = Completion(lease=job.lease, result=execution.result)
            await self._settler.settle(job.ctx, completion)
        except (JobCanceled, LeaseLost) as refused:
            log.info("job %s finished but its result is discarded: %s", job.label, refused)
            return Outcome.DISCARDED, None
        return Outcome.COMPLETED, None

    async def _ack_fail(self, job: _RunningJob, error: str, *, retry: bool) -> str | None:
        try:
            failure = Failure(lease=job.lease, error=error, retry=retry)
            return await self._settler.settle(job.ctx, failure)
        except (JobCanceled, LeaseLost) as refused:
            log.info("job %s: failure not recorded: %s", job.lease.job_id, refused)
            return None

    def _want_heartbeat(self, job: _RunningJob) -> None:
        """Have the job's heartbeat start one interval from now, unless it ends sooner.
        One timer serves every running job (a timer per job costs more than most jobs)."""
        loop = asyncio.get_running_loop()
        job.beat_due = loop.time() + self.heartbeat_seconds
        if self._beat_timer is None:
            self._beat_timer = loop.call_at(job.beat_due, self._start_due_heartbeats)

    def _start_due_heartbeats(self) -> None:
        """Start the heartbeat of each running job whose time has come; set the timer
        for the next one."""
        self._beat_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_due: float | None = None
        for job in self._jobs.values():
            due = job.beat_due
            if due is None or job.beat is not None:
                continue
            if due <= now:
                job.beat = loop.create_task(self._heartbeat(job))
            elif next_due is None or due < next_due:
                next_due = due
        if next_due is not None:
            self._beat_timer = loop.call_at(next_due, self._start_due_heartbeats)

    async def _heartbeat(self, job: _RunningJob) -> None:
        """Extend the job's lease now and every heartbeat interval (started one interval
        after the job by `_start_due_heartbeats`)."""
        while True:
            try:
                lease = await self.backend.heartbeat(
                    job.ctx, job.lease, lease_duration=self.lease_duration
                )
                job.set_lease(lease)
                if job.run is not None:
                    job.run.set_lease(lease)
            except JobCanceled:
                job.interrupt(CANCELED)
                return
            except LeaseLost:
                job.interrupt(LEASE_LOST)
                return
            except QueueError:
                log.exception("heartbeat of job %s failed; trying again", job.lease.job_id)
            await asyncio.sleep(self.heartbeat_seconds)

    async def _check_cancels_forever(self) -> None:
        """Read the state of this worker's running jobs every `cancel_check_interval`
        and stop those canceled meanwhile (by any process)."""
        assert self.cancel_check_seconds is not None
        while True:
            await asyncio.sleep(self.cancel_check_seconds)
            running = [job for job in self._jobs.values() if job.stop_reason is None]
            if not running:
                continue
            states = await asyncio.gather(
                *(self.backend.get_job(job.ctx, job.lease.job_id) for job in running),
                return_exceptions=True,
            )
            for job, state in zip(running, states, strict=True):
                if isinstance(state, BaseException):
                    if not isinstance(state, QueueError):
                        raise state
                    continue
                if state.status is JobStatus.CANCELED:
                    log.info("job %s was canceled; stopping it", job.label)
                    job.interrupt(CANCELED)

    def _on_cancel(self, tenant_id: str, job_id: str) -> None:
        for (tenant, job_id_running, _), job in self._jobs.items():
            if (tenant, job_id_running) == (tenant_id, job_id):
                job.interrupt(CANCELED)

    # -- maintenance and shutdown ----------------------------------------------------

    async def _reap_forever(self) -> None:
        while True:
            try:
                reaped = await self.backend.reap_expired()
                if reaped:
                    log.info("reaper returned %d expired leases", reaped)
                    self._wake.set()
            except QueueError:
                log.exception("reaper failed; trying again later")
            await asyncio.sleep(self.reaper_seconds)

    async def _schedule_forever(self) -> None:
        """Enqueue the schedules' due ticks at start and whenever the clock has entered
        a new minute since the last successful check."""
        checked: datetime | None = None
        while True:
            now = self.backend.clock()
            minute = now.replace(second=0, microsecond=0)
            if minute != checked:
                try:
                    ids = await enqueue_due(self.adapter, self.schedules, now)
                    checked = minute
                    if ids:
                        log.info("enqueued %d scheduled jobs at %s", len(ids), now.isoformat())
                        self._wake.set()
                except Exception:  # a schedule loop that dies would silently stop ticks
                    log.exception("enqueueing due schedule ticks failed; trying again")
            boundary = (minute + timedelta(minutes=1) - now).total_seconds()
            self._schedule_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._schedule_wake.wait(), max(0.0, min(boundary, SCHEDULE_RECHECK_SECONDS))
                )

    async def _shut_down(self) -> None:
        if not self._jobs:
            return
        log.info(
            "stopping: %d running jobs get %ss to finish",
            len(self._jobs),
            self._grace.total_seconds(),
        )
        runners = [job.runner for job in self._jobs.values() if job.runner is not None]
        loop = asyncio.get_running_loop()
        everything: asyncio.Future[Any] = asyncio.gather(*runners, return_exceptions=True)
        hurry: asyncio.Future[Any] = loop.create_task(self._hurry.wait())
        await asyncio.wait(
            {everything, hurry},
            timeout=max(0.0, self._grace.total_seconds()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        hurry.cancel()
        for job in list(self._jobs.values()):
            job.interrupt(SHUTDOWN)
        await everything
        with contextlib.suppress(asyncio.CancelledError):
            await hurry

    def _install_signal_handlers(self) -> list[signal.Signals]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(signum)
        return installed

    def _remove_signal_handlers(self, signals: list[signal.Signals]) -> None:
        loop = asyncio.get_running_loop()
        for signum in signals:
            loop.remove_signal_handler(signum)

    def _on_signal(self, signum: signal.Signals) -> None:
        if self._stop_requested.is_set():
            log.warning("%s again: stopping now", signum.name)
            self._hurry.set()
        else:
            log.info("%s: stopping gracefully (send it again to stop at once)", signum.name)
            self.request_stop()


class LoopWatchdog:
    """Warns when the worker's event loop is blocked longer than a threshold, naming the
    job whose code blocks it. A thread watches a timestamp the loop refreshes."""

    def __init__(self, worker: Worker[Any], threshold: float) -> None:
        self._worker = worker
        self._threshold = threshold
        self._beat = time.monotonic()
        self._done = threading.Event()
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(
            target=self._watch, name="dogqueue-loop-watchdog", daemon=True
        )

    async def beat_forever(self) -> None:
        """Refresh the timestamp while the loop runs freely."""
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self._threshold / 4)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        warned_for = -1.0
        while not self._done.wait(self._threshold / 4):
            beat = self._beat
            blocked = time.monotonic() - beat
            if blocked > self._threshold and beat != warned_for:
                warned_for = beat
                log.warning(
                    "event loop blocked for over %.1fs by job %s; use a SyncJob (def execute)"
                    " or await instead of blocking",
                    blocked,
                    self._blocking_job(),
                )

    def _blocking_job(self) -> str:
        """The job whose `execute` is on the loop thread's stack (or the running ones)."""
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, BaseJob):
                job_type = getattr(type(candidate), "JOB_TYPE", type(candidate).__name__)
                labels = [
                    job.label
                    for job in list(self._worker._jobs.values())
                    if job.lease.message.job_type == job_type
                ]
                return " or ".join(labels) or job_type
            frame = frame.f_back
        labels = [job.label for job in list(self._worker._jobs.values())]
        return ", ".join(labels) or "(none running)"
