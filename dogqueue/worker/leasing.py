"""The lease loop: lease jobs for the free slots, taking turns across tenants, and idle
until a job may be ready when there is none. Times are the event loop's."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import QueueError
from dogqueue.core.job import LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.observability.logging import log_unexpected
from dogqueue.worker.deploy import DeployHold
from dogqueue.worker.fairness import TenantRotation
from dogqueue.worker.pauses import PAUSE_REFRESH_SECONDS, PausedQueues
from dogqueue.worker.queues import QueueDiscovery
from dogqueue.worker.settings import MIN_IDLE_SECONDS, TENANT_REFRESH_SECONDS, WorkerSettings

log = logging.getLogger("dogqueue.worker")


class WakeEvent(asyncio.Event):
    """An `asyncio.Event` whose `set` also ends the lease loop's idle wait at once."""

    def __init__(self) -> None:
        super().__init__()
        #: The lease loop's idle wait in progress, which `set` ends.
        self.idle_wait: asyncio.Future[None] | None = None

    def set(self) -> None:
        super().set()
        _end_idle(self.idle_wait)


def _end_idle(idle: asyncio.Future[None] | None, *_: object) -> None:
    if idle is not None and not idle.done():
        idle.set_result(None)


class Leasing:
    """Leases jobs for a worker and hands each to `start`; `running()` says how many
    jobs run now. `wake` ends an idle wait; the loop ends once `stop_requested` is set."""

    def __init__(
        self,
        backend: Backend,
        settings: WorkerSettings,
        deploy: DeployHold,
        start: Callable[[QueueCtx, LeasedJob], None],
        running: Callable[[], int],
    ) -> None:
        self._backend = backend
        self._settings = settings
        self._deploy = deploy
        self._start = start
        self._running = running
        #: Whether log lines may hold error text.
        self.error_text = settings.error_text_logged
        self.wake = WakeEvent()
        self.stop_requested = asyncio.Event()
        assert settings.lease_duration is not None
        self._lease_duration = settings.lease_duration
        self._max_idle = settings.max_idle.total_seconds()
        #: The queues served now (those in use, with `queues="*"`).
        self.queues = ("default",) if settings.all_queues else settings.queues
        self._discovery = QueueDiscovery(backend) if settings.all_queues else None
        self._discovered_at = -1.0
        self.rotation = TenantRotation(settings.tenant_concurrency)
        #: The tenants served, by id (every tenant with ready jobs when `tenants=None`).
        self.ctxs: dict[str, QueueCtx] = {}
        if settings.tenants is not None:
            self.ctxs = {ctx.tenant_id: ctx for ctx in settings.tenants}
            self.rotation.replace(self.ctxs)
        self._refreshed_at = -1.0
        self.paused = PausedQueues(backend)

    async def run(self) -> None:
        """Lease and start jobs until a stop is requested."""
        concurrency = self._settings.concurrency
        while not self.stop_requested.is_set():
            self.wake.clear()
            free = concurrency - self._running()
            if free <= 0:
                await self.wake.wait()
                continue
            if free < concurrency // 2:
                # Jobs settled in one batch free their slots in the same turn of the
                # loop: let them all, so that one dequeue_many leases for every slot.
                await asyncio.sleep(0)
                free = concurrency - self._running()
            try:
                if await self._lease_round(free) == 0:
                    await self._idle()  # its reads fail too when storage does
            except QueueError as error:
                what = "leasing failed; retrying after a pause"
                log_unexpected(log, what, error, self.error_text)
                await self._idle_wait(self._max_idle)

    async def _lease_round(self, free: int) -> int:
        """Lease up to `free` jobs, taking turns across tenants; return how many."""
        await self._refresh_tenants()
        await self.paused.refresh(self.rotation.tenants)
        started = 0
        empty = self._deploy.yielding(asyncio.get_running_loop().time())
        while started < free and not self.stop_requested.is_set():
            candidates = [t for t in self.rotation.tenants if t not in empty]
            if not candidates:
                break
            share = max(1, (free - started) // len(candidates))
            progress = False
            for tenant in self.rotation.turns():
                if tenant in empty:
                    continue
                if self.stop_requested.is_set():
                    break
                ctx = self.ctxs[tenant]
                wanted = min(share, free - started, self.rotation.room(tenant))
                queues = self.paused.open_queues(tenant, self.queues)
                if not queues:  # every queue it would lease from is paused
                    empty.add(tenant)
                    continue
                leases = await self._backend.dequeue_many(
                    ctx, queues, wanted, lease_duration=self._lease_duration
                )
                if not leases:
                    empty.add(tenant)
                    continue
                progress = True
                if len(leases) < wanted:  # its queues ran dry: no second ask this round
                    empty.add(tenant)
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

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _refresh_queues(self) -> None:
        """With `queues="*"`: serve every queue a job was ever enqueued in."""
        if self._discovery is None:
            return
        if self._now() - self._discovered_at < TENANT_REFRESH_SECONDS:
            return
        found = await self._discovery.refresh()
        self.queues = found or ("default",)
        self._discovered_at = self._now()

    async def _refresh_tenants(self) -> None:
        await self._refresh_queues()
        if self._settings.tenants is not None:
            return
        if self._now() - self._refreshed_at < TENANT_REFRESH_SECONDS:
            return
        ready = await self._backend.ready_tenants(self.queues)
        for tenant in ready:
            self.ctxs.setdefault(tenant, QueueCtx(tenant))
        self.rotation.replace(ready)
        self._refreshed_at = self._now()

    async def _idle(self) -> None:
        """Sleep until a job may be leasable: the earliest `run_at` comes, or the queue
        changes and a cheap read shows a job due, or `wake` is set."""
        first = True
        while not self.wake.is_set():
            if self._discovery is not None:  # a new queue may be what changed
                self._discovered_at = -1.0
                await self._refresh_queues()
            await self.paused.refresh(self.rotation.tenants)  # a resume may be
            due_in = await self._seconds_until_due()
            if due_in <= 0 and not first:
                return
            first = False  # a job due at once that was not leased: wait a little
            longest = PAUSE_REFRESH_SECONDS if self.paused.any else self._max_idle
            await self._idle_wait(min(longest, max(MIN_IDLE_SECONDS, due_in)))

    async def _seconds_until_due(self) -> float:
        """Seconds until the earliest `run_at` of the served queues (max idle if none)."""
        tenant_ids = None if self._settings.tenants is None else list(self.ctxs)
        queues = self.paused.open_everywhere(self.queues)  # a paused queue's jobs wait
        if not queues:
            return PAUSE_REFRESH_SECONDS
        next_run_at = await self._backend.next_run_at(queues, tenant_ids)
        if next_run_at is None:
            return self._max_idle
        return (next_run_at - self._backend.clock()).total_seconds()

    async def _idle_wait(self, seconds: float) -> None:
        """Wait for a change in the queue, a wake-up, or `seconds`."""
        if self.wake.is_set():
            return
        # One task and one future, not a task per wait and a gather: idle waits end on
        # every change of the queue, and this is the worker's most frequent path.
        loop = asyncio.get_running_loop()
        idle: asyncio.Future[None] = loop.create_future()
        change = loop.create_task(self._backend.wait_for_change(seconds))
        change.add_done_callback(functools.partial(_end_idle, idle))
        self.wake.idle_wait = idle
        try:
            await idle
        finally:
            self.wake.idle_wait = None
            change.cancel()  # done or not: nothing is logged of a wait that failed
