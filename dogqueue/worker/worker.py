"""The worker: lease jobs fairly across tenants, run them with heartbeats and timeouts,
acknowledge the outcome, and shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Generic, Protocol, Self, runtime_checkable

import msgspec

from dogqueue.client.adapter import QueueAdapter
from dogqueue.client.results import job_settled
from dogqueue.core.errors import InvalidInput, InvalidJobType
from dogqueue.core.job import LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.core.workers import WorkerPresence
from dogqueue.jobs import ContextT, PayloadError
from dogqueue.observability.execution import observe_execution
from dogqueue.observability.outcome import Outcome
from dogqueue.schedules import Schedule
from dogqueue.worker.deploy import DeployHold
from dogqueue.worker.execution import Executor
from dogqueue.worker.heartbeats import Heartbeats, cancel_listener, check_cancels_forever
from dogqueue.worker.leasing import Leasing
from dogqueue.worker.maintenance import reap_forever, schedule_forever
from dogqueue.worker.presence import Presence
from dogqueue.worker.running import Execution, RunningJob, StopReason
from dogqueue.worker.settings import (
    BLOCKED_LOOP_SECONDS,
    CANCEL_CHECK_SECONDS,
    DEPLOY_GRACE,
    DEPLOY_HOLD,
    WorkerSettings,
    seconds,
)
from dogqueue.worker.watchdog import LoopWatchdog

log = logging.getLogger("dogqueue.worker")
log.addHandler(logging.NullHandler())  # a library logs only where the application says


@runtime_checkable
class CancelNotifier(Protocol):
    """A backend that reports, in-process, each committed `cancel_job`."""

    def add_cancel_listener(
        self, listener: Callable[[str, str], None]
    ) -> Callable[[], None]: ...  # pragma: no cover


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
    event loop blocked for `blocked_loop_warning` is logged with the job that blocks it
    (None: no watchdog thread). A job no code here can run (unknown type, payload that
    does not decode) is held for `deploy_hold` and given back, so a newer worker can
    take it, until `deploy_grace` after it was due; then it fails for good.

    Each execution logs a start line and one line for its outcome (`dogqueue.jobs`); a
    failure's line names the error's type and first line, never payloads or results.
    `log_error_text=False` (or `$DOGQUEUE_LOG_NO_ERROR_TEXT=1`) keeps error text out of
    every log line the worker writes: only error types remain.

    `schedules` (dogqueue.Schedule) are run too: their due ticks are enqueued when the
    worker starts and at every minute boundary of the backend's clock (any number of
    workers may run the same schedules: each tick is enqueued once).

    The keyword arguments make a `WorkerSettings`; `settings=` gives one instead.
    Every timer of the worker follows its event loop's clock, except the watchdog's.
    """

    def __init__(
        self,
        adapter: QueueAdapter[ContextT],
        *,
        settings: WorkerSettings | None = None,
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
        log_error_text: bool = True,
    ) -> None:
        # Every keyword argument but these is a setting (one list: the signature).
        options = {k: v for k, v in locals().items() if k not in ("self", "adapter", "settings")}
        if not isinstance(adapter, QueueAdapter):
            raise InvalidInput("adapter", "must be a QueueAdapter")
        made = WorkerSettings.of(**options)
        if settings is None:
            settings = made
        elif not isinstance(settings, WorkerSettings):
            raise InvalidInput("settings", "must be a WorkerSettings")
        elif made != WorkerSettings():
            raise InvalidInput("settings", "give either settings or keyword options, not both")
        self.adapter = adapter
        self.backend = adapter.backend
        #: The settings in force, with the adapter's defaults filled in.
        self.settings = settings = settings.resolved(adapter.config)
        assert settings.lease_duration is not None and settings.reaper_interval is not None
        lease_seconds = settings.lease_duration.total_seconds()
        self._error_text = settings.error_text_logged
        self._jobs: dict[tuple[str, str, int], RunningJob] = {}
        #: The context made for each tenant by `context_factory`.
        self.tenant_contexts: dict[str, Any] = {}
        hold_seconds = min(settings.deploy_hold.total_seconds(), lease_seconds / 2)
        self._deploy = DeployHold(self.backend, settings.deploy_grace, hold_seconds)
        self._executor = Executor(self.backend, settings.lease_duration, settings.sync_threads)
        self._settler = self._executor.settler
        self._heartbeats = Heartbeats(
            self.backend,
            self._jobs,
            settings.lease_duration,
            seconds(settings.heartbeat_interval) or lease_seconds / 3,
            self._error_text,
        )
        self._leasing = Leasing(self.backend, settings, self._deploy, self._start, self._count)
        self._presence = Presence(self.backend, self._describe, self._error_text)
        self._announce_wake = asyncio.Event()
        self._schedule_wake = asyncio.Event()
        self._hurry = asyncio.Event()
        self._finished = asyncio.Event()
        self._grace = settings.shutdown_grace
        self._started = False
        self._run_task: asyncio.Task[None] | None = None

    # -- what the worker serves ---------------------------------------------------------

    @property
    def tenants(self) -> list[QueueCtx] | None:
        """The tenants served; None serves every tenant with ready jobs."""
        tenants = self.settings.tenants
        return None if tenants is None else list(tenants)

    @property
    def all_queues(self) -> bool:
        """Whether the worker serves every queue in use (`queues="*"`)."""
        return self.settings.all_queues

    @property
    def queues(self) -> tuple[str, ...]:
        """The queues served now (with `queues="*"`, those in use so far)."""
        return self._leasing.queues

    @property
    def concurrency(self) -> int:
        """The most jobs running at once."""
        return self.settings.concurrency

    @property
    def schedules(self) -> list[Schedule]:
        """The schedules whose ticks this worker enqueues."""
        return list(self.settings.schedules)

    @property
    def counters(self) -> dict[str, int]:
        """Counters of what this worker did besides running jobs."""
        return self._deploy.counters

    @property
    def running(self) -> int:
        """How many jobs this worker is running now."""
        return len(self._jobs)

    def _count(self) -> int:
        return len(self._jobs)

    @property
    def presence(self) -> WorkerPresence:
        """This worker's presence record, as last announced (see `dogqueue workers`)."""
        return self._presence.record

    def _describe(self, record: WorkerPresence) -> WorkerPresence:
        tenants = self.settings.tenants
        return msgspec.structs.replace(
            record,
            queues=("*",) if self.all_queues else self.queues,
            tenants=None if tenants is None else tuple(ctx.tenant_id for ctx in tenants),
            concurrency=self.concurrency,
            running=len(self._jobs),
        )

    # -- starting and stopping ----------------------------------------------------------

    def wake(self) -> None:
        """Look for ready jobs and due schedule ticks, and announce the worker, now (e.g.
        after moving a fake clock)."""
        self._leasing.wake.set()
        self._schedule_wake.set()
        self._announce_wake.set()

    def request_stop(self, grace: timedelta | None = None) -> None:
        """Begin a graceful stop without waiting for it; a zero grace stops at once."""
        stopping = self._leasing.stop_requested
        self._grace = self.settings.shutdown_grace if grace is None else grace
        if stopping.is_set() or self._grace <= timedelta(0):
            self._hurry.set()
        stopping.set()
        self._leasing.wake.set()

    async def stop(self, grace: timedelta | None = None) -> None:
        """Stop leasing, give running jobs `grace` (default `shutdown_grace`) to finish,
        release the leases of the rest, and return once `run()` has returned."""
        self.request_stop(grace)
        if self._started:
            await self._finished.wait()

    async def __aenter__(self) -> Self:
        self._run_task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        if self._run_task is not None:
            await self._run_task

    async def run(self) -> None:
        """Lease and run jobs until stopped; return after the graceful shutdown."""
        if self._started:
            raise InvalidInput("run", "a Worker runs once; make a new one")
        self._started = True
        try:
            if self._leasing.stop_requested.is_set():
                return
            await self.backend.open()
            if self.settings.on_startup is not None:
                await self.settings.on_startup(self)
            await self._serve()
        finally:
            self._finished.set()

    async def _serve(self) -> None:
        """Run the lease loop and its helpers, then shut down."""
        settings = self.settings
        await self._presence.announce()
        remove_listener: Callable[[], None] | None = None
        if settings.fast_cancel and isinstance(self.backend, CancelNotifier):
            remove_listener = self.backend.add_cancel_listener(cancel_listener(self._jobs))
        signals = self._install_signal_handlers()
        self._executor.start()
        helpers = self._start_helpers()
        watchdog = None
        if settings.blocked_loop_warning is not None:
            watchdog = LoopWatchdog(self._jobs, settings.blocked_loop_warning.total_seconds())
            helpers.append(asyncio.get_running_loop().create_task(watchdog.beat_forever()))
            watchdog.start()
        try:
            await self._leasing.run()
            await self._shut_down()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if watchdog is not None:
                watchdog.stop()
            for job in list(self._jobs.values()):
                job.interrupt(StopReason.SHUTDOWN)
            runners = [job.runner for job in self._jobs.values() if job.runner is not None]
            await asyncio.gather(*runners, return_exceptions=True)
            self._heartbeats.close()
            if remove_listener is not None:
                remove_listener()
            self._remove_signal_handlers(signals)
            await self._presence.announce(stopped=True)
            if settings.on_shutdown is not None:
                await settings.on_shutdown(self)

    def _start_helpers(self) -> list[asyncio.Task[None]]:
        """The reaper, the schedule loop and the cancel checks, as tasks."""
        settings, loop, found_work = self.settings, asyncio.get_running_loop(), self._leasing.wake
        reaper_seconds = seconds(settings.reaper_interval)
        assert reaper_seconds is not None
        helpers = [
            loop.create_task(
                reap_forever(self.backend, reaper_seconds, found_work, self._error_text)
            ),
            loop.create_task(self._presence.announce_forever(self._announce_wake)),
        ]
        if settings.schedules:
            helpers.append(
                loop.create_task(
                    schedule_forever(
                        self.adapter,
                        settings.schedules,
                        self._schedule_wake,
                        found_work,
                        self._error_text,
                    )
                )
            )
        if (check_seconds := seconds(settings.cancel_check_interval)) is not None:
            helpers.append(
                loop.create_task(check_cancels_forever(self.backend, self._jobs, check_seconds))
            )
        return helpers

    # -- running one job ----------------------------------------------------------------

    def _start(self, ctx: QueueCtx, lease: LeasedJob) -> None:
        job = RunningJob(ctx, lease)
        self._jobs[job.key] = job
        self._leasing.rotation.started(ctx.tenant_id)
        job.runner = asyncio.get_running_loop().create_task(self._run_job(job))

    async def _run_job(self, job: RunningJob) -> None:
        message = job.lease.message
        # Spans, the start line and the one outcome line (dogqueue.jobs) of this execution.
        async with observe_execution(
            self.backend, job.ctx, job.lease, error_text=self._error_text
        ) as observation:
            try:
                try:
                    decoded = self.adapter.job_registry.decode(message)
                except (InvalidJobType, PayloadError) as unrunnable:
                    outcome, reason = await self._deploy.handle(
                        job, unrunnable, self._executor.fail
                    )
                    observation.set_outcome(outcome, reason=reason)
                    return
                timeout = type(decoded).TIMEOUT or self.settings.timeout
                self._heartbeats.want(job)
                execution: Execution | None = None
                if job.stop_reason is None:
                    factory = self.settings.context_factory  # no coroutine without one
                    context = (
                        self.settings.context
                        if factory is None
                        else await self._context_for(job.ctx, factory)
                    )
                    if job.stop_reason is None:  # not stopped while its context was made
                        execution = await self._executor.execute_here(
                            job, decoded, context, timeout
                        )
                job.stop_heartbeat()
                settled = await self._executor.settle(job, execution, timeout)
                observation.set_outcome(*settled)
            except Exception as error:  # logged, with its traceback, as the outcome
                observation.set_outcome(Outcome.WORKER_ERROR, error, "unexpected worker error")
            finally:
                job.stop_heartbeat()
                if job.beat is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await job.beat
                del self._jobs[job.key]
                # The job, its run (in this task's context) and this task form cycles:
                # break them, so they are freed now and not by the cycle collector.
                job.runner = job.run = None
                self._leasing.rotation.finished(job.ctx.tenant_id)
                self._leasing.wake.set()
                job_settled(self.backend)

    async def _context_for(self, ctx: QueueCtx, factory: Callable[[QueueCtx], Any]) -> Any:
        """The context object `factory` made for jobs of this tenant."""
        if ctx.tenant_id not in self.tenant_contexts:
            made = factory(ctx)
            if inspect.isawaitable(made):
                made = await made
            self.tenant_contexts.setdefault(ctx.tenant_id, made)
        return self.tenant_contexts[ctx.tenant_id]

    # -- shutdown -----------------------------------------------------------------------

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
            job.interrupt(StopReason.SHUTDOWN)
        await everything
        with contextlib.suppress(asyncio.CancelledError):
            await hurry

    def _install_signal_handlers(self) -> list[signal.Signals]:
        if (
            not self.settings.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
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
        if self._leasing.stop_requested.is_set():
            log.warning("%s again: stopping now", signum.name)
            self._hurry.set()
        else:
            log.info("%s: stopping gracefully (send it again to stop at once)", signum.name)
            self.request_stop()
