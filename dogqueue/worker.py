"""The worker runtime: lease jobs fairly across tenants, run them with heartbeats and
timeouts, acknowledge the outcome, and shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import TracebackType
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
from dogqueue.core.job import LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.jobs import ContextT, JobError
from dogqueue.observability.execution import observe_execution
from dogqueue.runtime.fairness import TenantRotation

log = logging.getLogger("dogqueue.worker")
log.addHandler(logging.NullHandler())  # a library logs only where the application says

#: How long discovered tenants are trusted before `ready_tenants` is asked again.
TENANT_REFRESH_SECONDS = 1.0
#: The shortest idle wait, so a due job that cannot be leased yet never spins the loop.
MIN_IDLE_SECONDS = 0.05
#: Frames of a traceback kept in a failed event, and the longest error text stored.
ERROR_FRAMES = 8
MAX_ERROR_CHARS = 4_000

#: Why a running job's task was stopped before it finished.
CANCELED, LEASE_LOST, TIMED_OUT, SHUTDOWN = "canceled", "lease lost", "timed out", "shutdown"


@runtime_checkable
class CancelNotifier(Protocol):
    """A backend that reports, in-process, each committed `cancel_job`."""

    def add_cancel_listener(
        self, listener: Callable[[str, str], None]
    ) -> Callable[[], None]: ...  # pragma: no cover


class _RunningJob:
    """A leased job this worker is running, and why it was stopped, if it was."""

    def __init__(self, ctx: QueueCtx, lease: LeasedJob) -> None:
        self.ctx = ctx
        self.lease = lease
        self.task: asyncio.Task[bytes | None] | None = None
        self.runner: asyncio.Task[None] | None = None
        self.stop_reason: str | None = None

    def interrupt(self, reason: str) -> None:
        """Stop the job's task; the first reason given wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.task is not None:
            self.task.cancel()


def _seconds(name: str, value: timedelta) -> float:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidInput(name, "must be a positive timedelta")
    return value.total_seconds()


def _failure_outcome(status: str | None) -> str:
    """A failed attempt's outcome: retrying, failed (for good) or lost (not recorded)."""
    if status is None:
        return "lost"
    return "retrying" if status == JobStatus.ENQUEUED else "failed"


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
    cancelled: at once when canceled through this process's backend, otherwise at its
    next heartbeat. `stop()` (or SIGTERM/SIGINT when `run()` is in the main thread)
    stops leasing, lets running jobs finish within the grace period, then gives back
    the leases of those still running.
    """

    def __init__(
        self,
        adapter: QueueAdapter[ContextT],
        *,
        tenants: Sequence[QueueCtx] | None = None,
        queues: Sequence[str] = ("default",),
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
    ) -> None:
        if not isinstance(adapter, QueueAdapter):
            raise InvalidInput("adapter", "must be a QueueAdapter")
        self.adapter = adapter
        self.backend = adapter.backend
        self.queues = check.check_queues(queues)
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

        self._rotation = TenantRotation(tenant_concurrency)
        self._ctxs: dict[str, QueueCtx] = {}
        if self.tenants is not None:
            self._ctxs = {ctx.tenant_id: ctx for ctx in self.tenants}
            self._rotation.replace(self._ctxs)
        self._refreshed_at = -1.0
        self._jobs: dict[tuple[str, str, int], _RunningJob] = {}
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._hurry = asyncio.Event()
        self._finished = asyncio.Event()
        self._grace = shutdown_grace
        self._started = False
        self._run_task: asyncio.Task[None] | None = None

    # -- public ----------------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many jobs this worker is running now."""
        return len(self._jobs)

    def wake(self) -> None:
        """Look for ready jobs now (e.g. after moving a fake clock)."""
        self._wake.set()

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
            remove_listener: Callable[[], None] | None = None
            if self.fast_cancel and isinstance(self.backend, CancelNotifier):
                remove_listener = self.backend.add_cancel_listener(self._on_cancel)
            signals = self._install_signal_handlers()
            reaper = asyncio.get_running_loop().create_task(self._reap_forever())
            try:
                await self._lease_loop()
                await self._shut_down()
            finally:
                reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reaper
                for job in list(self._jobs.values()):
                    job.interrupt(SHUTDOWN)
                runners = [job.runner for job in self._jobs.values() if job.runner is not None]
                await asyncio.gather(*runners, return_exceptions=True)
                if remove_listener is not None:
                    remove_listener()
                self._remove_signal_handlers(signals)
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
        empty: set[str] = set()
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
            self._refreshed_at = -1.0  # nothing found: ask for ready tenants next time
        return started

    async def _refresh_tenants(self) -> None:
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
        label = f"{job.ctx.tenant_id}/{job.lease.job_id} {message.job_type}#{job.lease.attempt}"
        heartbeat: asyncio.Task[None] | None = None
        # Spans, start/finish log lines (dogqueue.jobs) and the outcome of this execution.
        async with observe_execution(self.backend, job.ctx, job.lease) as observation:
            try:
                try:
                    job_class = self.adapter.job_registry.job_class(message.job_type)
                except InvalidJobType:
                    await self._ack_fail(job, f"unknown job type {message.job_type!r}", retry=False)
                    observation.set_outcome("failed")
                    log.warning("job %s failed: unknown job type", label)
                    return
                timeout = job_class.TIMEOUT or self.timeout
                loop = asyncio.get_running_loop()
                heartbeat = loop.create_task(self._heartbeat(job))
                if job.stop_reason is None:
                    job.task = loop.create_task(
                        self.adapter.job_registry.execute_job(message, self.context)
                    )
                    done, _ = await asyncio.wait(
                        {job.task}, timeout=None if timeout is None else timeout.total_seconds()
                    )
                    if not done:
                        job.interrupt(TIMED_OUT)
                        await asyncio.wait({job.task})
                heartbeat.cancel()
                outcome, error = await self._settle(job, label, timeout)
                observation.set_outcome(outcome, error)
            except Exception as error:
                observation.set_outcome("worker_error", error)
                log.exception("job %s: unexpected worker error", label)
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await heartbeat
                del self._jobs[(job.ctx.tenant_id, job.lease.job_id, job.lease.lease_token)]
                self._rotation.finished(job.ctx.tenant_id)
                self._wake.set()

    async def _settle(
        self, job: _RunningJob, label: str, limit: timedelta | None
    ) -> tuple[str, BaseException | None]:
        """Acknowledge the outcome of the job's task (or of its interruption); return the
        outcome ("completed", "retrying", "failed", "canceled", ...) and the job's error."""
        reason, task = job.stop_reason, job.task
        if reason in (CANCELED, LEASE_LOST):
            log.info("job %s stopped: %s; its result is discarded", label, reason)
            return ("canceled" if reason == CANCELED else "lease_lost"), None
        if reason == SHUTDOWN:
            try:
                await self.backend.release(job.ctx, job.lease)
                log.info("job %s released at shutdown", label)
            except (JobCanceled, LeaseLost) as refused:
                log.info("job %s not released: %s", label, refused)
            return "released", None
        if reason == TIMED_OUT:
            status = await self._ack_fail(job, f"timed out after {limit}", retry=True)
            log.warning("job %s timed out after %s", label, limit)
            return _failure_outcome(status), None
        if task is None:
            return "not_started", None
        if task.cancelled():
            status = await self._ack_fail(job, "cancelled from inside the job", retry=True)
            log.warning("job %s cancelled itself", label)
            return _failure_outcome(status), None
        if (error := task.exception()) is not None:
            if isinstance(error, JobError):
                status = await self._ack_fail(job, error.message, retry=error.retryable)
            else:
                status = await self._ack_fail(job, summarize_error(error), retry=True)
            return _failure_outcome(status), error
        try:
            await self.backend.ack_complete(job.ctx, job.lease, task.result())
        except (JobCanceled, LeaseLost) as refused:
            log.info("job %s finished but its result is discarded: %s", label, refused)
            return "discarded", None
        return "completed", None

    async def _ack_fail(self, job: _RunningJob, error: str, *, retry: bool) -> str | None:
        try:
            return await self.backend.ack_fail(job.ctx, job.lease, error, retry=retry)
        except (JobCanceled, LeaseLost) as refused:
            log.info("job %s: failure not recorded: %s", job.lease.job_id, refused)
            return None

    async def _heartbeat(self, job: _RunningJob) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                job.lease = await self.backend.heartbeat(
                    job.ctx, job.lease, lease_duration=self.lease_duration
                )
            except JobCanceled:
                job.interrupt(CANCELED)
                return
            except LeaseLost:
                job.interrupt(LEASE_LOST)
                return
            except QueueError:
                log.exception("heartbeat of job %s failed; trying again", job.lease.job_id)

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
