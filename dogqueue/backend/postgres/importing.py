"""Moving a log to PostgreSQL: replay another backend's events, byte for byte, into an
empty queue schema, rebuild the projection from them and sequence them."""

from __future__ import annotations

from collections.abc import Iterable

from dogqueue.backend.kit.ordering import in_log_order
from dogqueue.backend.kit.rows import columns
from dogqueue.backend.postgres.backend import PostgresBackend
from dogqueue.backend.postgres.queries import Q
from dogqueue.core.codec import encode_event
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent

#: Events inserted per statement.
IMPORT_PAGE = 5_000


async def import_events(backend: PostgresBackend, events: Iterable[AnyEvent]) -> int:
    """Append `events` (a whole log in log order, e.g. `await sqlite.read_events()`) to
    the empty queue of `backend`, keeping each event's seq, then rebuild the projection
    and give the events their positions; return how many were imported. One
    transaction: on any error nothing is imported."""
    await backend.open()
    count = 0
    async with backend.pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE events, jobs IN EXCLUSIVE MODE")
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events)"):
            raise StorageError(f"queue schema {backend.schema!r} is not empty")
        page: list[tuple[int, str, str, int, str, bytes]] = []
        last = 0
        for event in in_log_order(events):
            last = event.seq
            data = encode_event(event)
            page.append((event.seq, event.tenant_id, event.job_id, event.version, event.type, data))
            if len(page) == IMPORT_PAGE:
                await conn.execute(Q["insert_events"], *columns(page, 6))
                count += len(page)
                page.clear()
        if page:
            await conn.execute(Q["insert_events"], *columns(page, 6))
            count += len(page)
        if last:
            await conn.execute("SELECT setval('event_seq', $1)", last)
    await backend.rebuild_projections()
    await backend.seal()
    return count
