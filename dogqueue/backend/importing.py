"""Moving a whole log from one queue to another, whatever their backends: every event
of the source, byte for byte and in log order, into an empty target, which rebuilds its
projection from them, numbers and chains them (`dogqueue.transfer` verifies the result).

Each backend writes an imported log its own way (`import_events` in its `importing`
module); reading the source (any LogReader) and refusing what cannot be moved are
shared here."""

from __future__ import annotations

import importlib
import os

from dogqueue.backend import locate
from dogqueue.backend.contract import Backend
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent

#: Events read from the source per page.
PAGE = 10_000


async def read_log(source: str | os.PathLike[str]) -> list[AnyEvent]:
    """Every event of the source's log, in log order; refuses events still waiting for
    a position (their order is not settled yet)."""
    log = locate.open_log(source)
    try:
        waiting = await log.unsealed()
        if waiting:
            raise StorageError(
                f"{len(waiting)} event(s) of {os.fspath(source)!r} are not numbered yet: open"
                " the queue once (any backend numbers them) or wait for its workers, then retry"
            )
        events: list[AnyEvent] = []
        while page := await log.events(after=events[-1].seq if events else 0, limit=PAGE):
            events.extend(page)
        return events
    finally:
        await log.close()


def _importer_module(target: str) -> str:
    if locate.is_postgres_url(target):
        return "dogqueue.backend.postgres.importing"
    if locate.is_redis_url(target):
        return "dogqueue.backend.redis.importing"
    return "dogqueue.backend.sqlite.importing"


async def import_events(backend: Backend, target: str, events: list[AnyEvent]) -> int:
    """Write `events` into the empty queue of `backend` (opened from `target`) its
    backend's way, numbered and chained; how many were imported."""
    module = importlib.import_module(_importer_module(target))
    count: int = await module.import_events(backend, events)
    return count
