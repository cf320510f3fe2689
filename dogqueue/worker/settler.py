"""Acknowledgements of jobs that finish close together, settled in batches.

A finished job's completion or failure is queued; if no batch of its tenant is being
settled, one starts on the next turn of the event loop, so an idle worker adds no delay.
While a batch is in flight, the jobs that finish meanwhile wait and go together in the
next one: one `settle_many` (one unit of work) per batch instead of one per job.
"""

from __future__ import annotations

import asyncio

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import QueueError
from dogqueue.core.job import Settlement
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.engine import deliver

#: Most acknowledgements in one batch.
MAX_SETTLE_BATCH = 256

_Pending = list[tuple[Settlement, "asyncio.Future[JobStatus]"]]


class Settler:
    """Settles acknowledgements through `backend.settle_many`, batched per tenant."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._pending: dict[str, _Pending] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        #: Batches settled and acknowledgements they held (for tests and benchmarks).
        self.batches = 0
        self.settled = 0

    def settle(self, ctx: QueueCtx, settlement: Settlement) -> asyncio.Future[JobStatus]:
        """A future of the job's status once its acknowledgement is committed; it raises
        the error that refused it (LeaseLost, JobCanceled, ...), as `ack_complete` and
        `ack_fail` would. A plain function returning the future, not a coroutine: the
        worker settles every job through it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JobStatus] = loop.create_future()
        tenant = ctx.tenant_id
        pending = self._pending.get(tenant)
        if pending is None:  # not setdefault: that makes a list on every call
            pending = self._pending[tenant] = []
        pending.append((settlement, future))
        if tenant not in self._flushers:
            self._flushers[tenant] = loop.create_task(self._flush(ctx))
        return future

    async def _flush(self, ctx: QueueCtx) -> None:
        tenant = ctx.tenant_id
        try:
            while pending := self._pending.get(tenant):
                batch = pending[:MAX_SETTLE_BATCH]
                del pending[:MAX_SETTLE_BATCH]
                await self._settle_batch(ctx, batch)
        finally:
            del self._flushers[tenant]
            for _, future in self._pending.pop(tenant, []):  # only if this task was cancelled
                future.cancel()

    async def _settle_batch(self, ctx: QueueCtx, batch: _Pending) -> None:
        try:
            results = await self.backend.settle_many(ctx, [item for item, _ in batch])
        except QueueError as error:  # the whole batch failed (storage, closed backend)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        self.batches += 1
        self.settled += len(batch)
        deliver([future for _, future in batch], results)  # a refusal is raised in its caller
