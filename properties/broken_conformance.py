"""Broken backends for the shipped conformance suite, named as MODULE:FACTORY by
properties/test_conformance_ships.py: each wraps a correct memory backend through the
`Backend` contract (properties/broken.py) and breaks one promise the suite checks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from dogqueue.backend.contract import Backend
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.log.reader import LogPos, LogReader, LogRecord
from dogqueue.testing.factories import MemoryFactory
from properties.broken import DequeueReordersEqualPriorities, Forwarding, WrappingFactory


class EnqueueManyOneByOne(Forwarding):
    """enqueue_many appends its jobs one call at a time, letting other callers in
    between: neither all-or-nothing nor on consecutive positions."""

    async def enqueue_many(self, ctx: QueueCtx, messages: Sequence[JobMessage]) -> list[str]:
        ids = []
        for message in messages:
            ids.append(await self.inner.enqueue(ctx, message))
            await asyncio.sleep(0)
        return ids


class RecordsWithAGap:
    """A log reader whose records skip position 4 (every later one is shifted up)."""

    def __init__(self, inner: LogReader) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        found = await self.inner.records(after=after, limit=limit)
        return [r._replace(pos=LogPos(r.pos + 1)) if r.pos >= 4 else r for r in found]


class LogReaderSkipsAPosition(Forwarding):
    """log_reader numbers the log with a gap."""

    def log_reader(self, *, wait_for_own_writes: bool = True) -> LogReader:
        inner = self.inner.log_reader(wait_for_own_writes=wait_for_own_writes)
        return cast(LogReader, RecordsWithAGap(inner))


def _broken(wrapper: type[Forwarding]) -> WrappingFactory:
    def wrap(backend: Backend) -> Forwarding:
        return wrapper(backend)

    wrap.__name__ = wrapper.__name__
    return WrappingFactory(MemoryFactory(), wrap)


#: Each broken memory backend, and the conformance tests (a -k expression) that catch it.
reorders_dequeue = _broken(DequeueReordersEqualPriorities)
enqueues_one_by_one = _broken(EnqueueManyOneByOne)
skips_a_position = _broken(LogReaderSkipsAPosition)

CAUGHT_BY = {
    "reorders_dequeue": "test_order",
    "enqueues_one_by_one": "concurrent or taken_key",
    "skips_a_position": "test_log_reader",
}
