"""Reading metrics from a queue's log without blocking the event loop."""

from __future__ import annotations

import asyncio
from datetime import datetime

from dogqueue.backend.contract import Backend
from dogqueue.clock import Clock, utc_now
from dogqueue.core.errors import InvalidInput
from dogqueue.core.message import QueueCtx
from dogqueue.log.reader import LogReader
from dogqueue.observability.metrics import MetricsFold, MetricsSnapshot

#: Events read and folded per step; the event loop runs between steps.
DEFAULT_PAGE_SIZE = 2_000


class MetricsReader:
    """Folds a queue's log into metrics incrementally: each read folds only the events
    given a position since the previous one, in pages, off the event loop.

    `source` is a backend (its `log_reader()` and clock are used) or a `LogReader`
    (then `clock`, default the system clock, tells the time)."""

    def __init__(
        self,
        source: Backend | LogReader,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidInput("page_size", "must be a positive int")
        self._backend = None if isinstance(source, LogReader) else source
        self._log = source if isinstance(source, LogReader) else None
        self._clock = clock
        self._page_size = page_size
        self._fold = MetricsFold()
        self._lock = asyncio.Lock()

    @property
    def last_position(self) -> int:
        """Log position folded so far."""
        return self._fold.last_position

    def _reader(self) -> LogReader:
        if self._log is None:
            assert self._backend is not None
            # Metrics poll: an event not yet numbered is folded by the next read, so a
            # read need not wait for it (a held-back sequencer must not stall a scrape).
            self._log = self._backend.log_reader(wait_for_own_writes=False)
        return self._log

    def now(self) -> datetime:
        """The time metrics are computed at: the given clock, the backend's, or now."""
        if self._clock is not None:
            return self._clock()
        return self._backend.clock() if self._backend is not None else utc_now()

    async def catch_up(self) -> int:
        """Fold every event given a position since the last read; return how many."""
        folded = 0
        async with self._lock:
            log = self._reader()
            while True:
                page = await log.events(after=self._fold.last_position, limit=self._page_size)
                if not page:
                    return folded
                await asyncio.to_thread(self._fold.apply_all, page)
                folded += len(page)

    async def snapshot(self, ctx: QueueCtx | None = None) -> MetricsSnapshot:
        """The metrics at the clock's now: one tenant's for `ctx`, else all."""
        if ctx is not None and not isinstance(ctx, QueueCtx):
            raise InvalidInput("ctx", "must be a QueueCtx or None")
        await self.catch_up()
        now = self.now()
        tenant_id = None if ctx is None else ctx.tenant_id
        async with self._lock:
            snapshot = await asyncio.to_thread(self._fold.snapshot, now, tenant_id)
        snapshot.unsealed_events = len(await self._reader().unsealed())
        return snapshot

    async def close(self) -> None:
        """Release the log reader this object opened from a backend."""
        if self._backend is not None and self._log is not None:
            await self._log.close()
            self._log = None


class Observability:
    """What a queue exposes to its operators: `await metrics(ctx=None)`."""

    def __init__(self, backend: Backend) -> None:
        self.reader = MetricsReader(backend)

    async def metrics(self, ctx: QueueCtx | None = None) -> MetricsSnapshot:
        """A snapshot folded from the log now; one tenant's for `ctx`."""
        return await self.reader.snapshot(ctx)
