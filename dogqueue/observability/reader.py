"""Reading metrics from a backend's log without blocking the event loop."""

from __future__ import annotations

import asyncio

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import InvalidInput
from dogqueue.core.message import QueueCtx
from dogqueue.observability.metrics import MetricsFold, MetricsSnapshot

#: Events read and folded per step; the event loop runs between steps.
DEFAULT_PAGE_SIZE = 2_000


class MetricsReader:
    """Folds a backend's log into metrics incrementally: each read folds only the
    events appended since the previous one, in pages, off the event loop."""

    def __init__(self, backend: Backend, *, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidInput("page_size", "must be a positive int")
        self._backend = backend
        self._page_size = page_size
        self._fold = MetricsFold()
        self._lock = asyncio.Lock()

    @property
    def last_seq(self) -> int:
        """Log position folded so far."""
        return self._fold.last_seq

    async def catch_up(self) -> int:
        """Fold every event appended since the last read; return how many."""
        folded = 0
        async with self._lock:
            while True:
                page = await self._backend.read_events(
                    after_seq=self._fold.last_seq, limit=self._page_size
                )
                if not page:
                    return folded
                await asyncio.to_thread(self._fold.apply_all, page)
                folded += len(page)

    async def snapshot(self, ctx: QueueCtx | None = None) -> MetricsSnapshot:
        """The metrics at the backend clock's now: one tenant's for `ctx`, else all."""
        if ctx is not None and not isinstance(ctx, QueueCtx):
            raise InvalidInput("ctx", "must be a QueueCtx or None")
        await self.catch_up()
        now = self._backend.clock()
        tenant_id = None if ctx is None else ctx.tenant_id
        async with self._lock:
            return await asyncio.to_thread(self._fold.snapshot, now, tenant_id)


class Observability:
    """What a queue exposes to its operators: `await metrics(ctx=None)`."""

    def __init__(self, backend: Backend) -> None:
        self.reader = MetricsReader(backend)

    async def metrics(self, ctx: QueueCtx | None = None) -> MetricsSnapshot:
        """A snapshot folded from the log now; one tenant's when `ctx` is given."""
        return await self.reader.snapshot(ctx)
