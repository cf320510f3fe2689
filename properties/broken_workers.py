"""Deliberately broken Workers for the fleet simulation's catch table: each changes one
thing the real `Worker` does right, the way a plausible bug would.

    python -m dogqueue.testing.simulation --seeds 50 \\
        --worker properties.broken_workers:CancelListenerDropsOne
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from dogqueue.backend.base import EngineBackend
from dogqueue.core.commands import Expire
from dogqueue.core.errors import JobCanceled, LeaseLost, QueueError
from dogqueue.core.job import Settlement
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.engine import Reads, Transaction, Unit
from dogqueue.worker import StopReason, Worker
from dogqueue.worker.heartbeats import Heartbeats
from dogqueue.worker.running import RunningJob
from dogqueue.worker.settler import Settler


class _HeartbeatsOfAnyToken(Heartbeats):
    """Extends the job's current lease, whoever holds it, and keeps it."""

    async def _beat(self, job: RunningJob) -> None:
        while True:
            try:
                lease = job.lease
                info = await self._backend.get_job(job.ctx, lease.job_id)
                if info.status is JobStatus.LEASED:
                    lease = msgspec.structs.replace(lease, lease_token=info.lease_token)
                lease = await self._backend.heartbeat(
                    job.ctx, lease, lease_duration=self._lease_duration
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
            except QueueError:
                pass
            await asyncio.sleep(self._interval)


class HeartbeatRenewsAnotherToken(Worker[Any]):
    """The heartbeat extends the job's current lease, whoever holds it, and keeps it:
    a worker that lost its lease runs on and acknowledges under the new holder's
    token."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        beats = self._heartbeats
        self._heartbeats = _HeartbeatsOfAnyToken(
            self.backend, self._jobs, beats._lease_duration, beats._interval
        )


class _UnfencedSettler(Settler):
    """Settles again under the job's current token when the lease was lost."""

    def settle(self, ctx: QueueCtx, settlement: Settlement) -> asyncio.Future[JobStatus]:
        first = super().settle(ctx, settlement)
        return asyncio.ensure_future(self._again_if_lost(ctx, settlement, first))

    async def _again_if_lost(
        self, ctx: QueueCtx, settlement: Settlement, first: asyncio.Future[JobStatus]
    ) -> JobStatus:
        try:
            return await first
        except LeaseLost:
            info = await self.backend.get_job(ctx, settlement.lease.job_id)
            lease = msgspec.structs.replace(settlement.lease, lease_token=info.lease_token)
            return await super().settle(ctx, msgspec.structs.replace(settlement, lease=lease))


class SettlerAcksWithoutFence(Worker[Any]):
    """A job whose lease expired while it ran is acknowledged anyway, under the token
    the job has now (as if the fence were not checked)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settler = self._executor.settler = _UnfencedSettler(self.backend)


def _engine_backend(backend: Any) -> EngineBackend:
    while not isinstance(backend, EngineBackend):
        backend = backend.inner
    return backend


async def _reap_all_but_one(backend: Any, interval: float, found_work: asyncio.Event) -> None:
    storage = _engine_backend(backend)
    engine = storage.engine

    def reclaim_but_one(tx: Transaction, now: datetime) -> int:
        expired = tx.expired_leases(None, now)[1:]
        for state in expired:
            command = Expire(
                tenant_id=state.tenant_id, job_id=state.job_id, at=now, draw=engine.draw()
            )
            engine._apply(tx, state, command)
        return len(expired)

    while True:
        try:
            if await storage.run_unit(Unit(Reads(expired=(None,)), reclaim_but_one)):
                found_work.set()
        except QueueError:
            pass
        await asyncio.sleep(interval)


class ReaperSkipsOneLease(Worker[Any]):
    """The reaper returns every expired lease but the one that expired first."""

    def _start_helpers(self) -> list[asyncio.Task[None]]:
        helpers = super()._start_helpers()
        helpers[0].cancel()  # the reaper comes first
        interval = self.settings.reaper_interval
        assert interval is not None
        reaper = _reap_all_but_one(self.backend, interval.total_seconds(), self._leasing.wake)
        return [asyncio.get_running_loop().create_task(reaper), *helpers]


class _DropsFirstCancel:
    """A backend whose cancel listeners miss the first cancel of a job running here."""

    def __init__(self, inner: Any, worker: Worker[Any]) -> None:
        self._inner = inner
        self._worker = worker
        self._dropped = False

    def add_cancel_listener(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        def lossy(tenant_id: str, job_id: str) -> None:
            running = any(
                (t, j) == (tenant_id, job_id) and job.executing
                for (t, j, _), job in self._worker._jobs.items()
            )
            if running and not self._dropped:
                self._dropped = True
                return
            listener(tenant_id, job_id)

        remove: Callable[[], None] = self._inner.add_cancel_listener(lossy)
        return remove

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CancelListenerDropsOne(Worker[Any]):
    """The in-process cancel listener loses the first cancel of a job running here
    (the job then runs on until the next cancel check)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = _DropsFirstCancel(self.backend, self)


#: Every broken worker, by name.
BROKEN_WORKERS: dict[str, type[Worker[Any]]] = {
    cls.__name__: cls
    for cls in (
        HeartbeatRenewsAnotherToken,
        SettlerAcksWithoutFence,
        ReaperSkipsOneLease,
        CancelListenerDropsOne,
    )
}
