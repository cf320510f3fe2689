"""Moving a log to SQLite: another backend's events, byte for byte and at their log
positions, into an empty log file, chained as they are written; then the projection is
rebuilt from them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from dogqueue.backend.kit.ordering import in_log_order
from dogqueue.backend.sqlite.backend import SqliteBackend
from dogqueue.backend.sqlite.chain import save_heads, stored_heads
from dogqueue.backend.sqlite.connection import retry_busy, translate
from dogqueue.backend.sqlite.queries import Q
from dogqueue.core.codec import encode_event
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent, Enqueued


async def import_events(backend: SqliteBackend, events: Iterable[AnyEvent]) -> int:
    """Append `events` (a whole log in log order, e.g. `await pg.read_events()`) to the
    empty log of `backend`, keeping each event's seq as its position, chain them under
    the backend's audit key and rebuild the projection; return how many were imported.
    One transaction: on any error nothing is imported."""
    await backend.open()
    audit_key = backend.audit_key

    def write_once(conn: sqlite3.Connection) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            count = _insert(conn, events, audit_key, str(backend.path))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return count

    def write(conn: sqlite3.Connection) -> int:
        try:
            return retry_busy(lambda: write_once(conn))
        except sqlite3.Error as error:
            raise translate(error) from error

    count = int(await backend.writer.call(write))
    await backend.rebuild_projections()
    return count


def _insert(
    conn: sqlite3.Connection, events: Iterable[AnyEvent], audit_key: bytes | None, name: str
) -> int:
    if conn.execute(Q["read_events"], (0, 1)).fetchone() is not None:
        raise StorageError(f"the SQLite log {name!r} is not empty")
    heads = stored_heads(conn, audit_key)
    rows = []
    for event in in_log_order(events):
        data = encode_event(event)
        digest, tpos = heads.link(event.tenant_id, event.seq, data)
        rows.append(
            (
                event.seq,
                event.tenant_id,
                event.job_id,
                event.version,
                event.type,
                data,
                digest,
                tpos,
                event.message.idempotency_key if isinstance(event, Enqueued) else None,
            )
        )
    conn.executemany(Q["insert_event"], rows)
    save_heads(conn, heads)
    return len(rows)
