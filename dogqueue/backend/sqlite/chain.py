"""The hash chain on SQLite: extending each tenant's chain (and its tenant positions)
inside a write transaction, folding the heads into `chain_heads`, and hashing events
written before the chain existed.

A tenant's head is its last event. `chain_heads` holds the heads as of the position in
`chain_heads_position`; it is brought up to the end of the log every so many events a
writer appends (`transaction.FOLD_EVERY`) and when it closes, not at every commit (that
was a second B-tree write per commit). A head is read as the tenant's last event after
that position, else its row.
"""

from __future__ import annotations

import sqlite3

from dogqueue.backend.sqlite.queries import Q
from dogqueue.log.chain import ChainHeads

#: Events hashed per query when an old log is upgraded.
BACKFILL_PAGE = 10_000


def stored_heads(conn: sqlite3.Connection, audit_key: bytes | None = None) -> ChainHeads:
    """A chain extender that reads a tenant's head from `conn` the first time it links
    one of its events (inside a write transaction, which holds the write lock)."""

    def load_head(tenant_id: str) -> tuple[bytes, int] | None:
        row = conn.execute(Q["chain_head"], (tenant_id,)).fetchone()
        return None if row is None else (bytes(row[0]), int(row[1]))

    return ChainHeads(audit_key, load_head)


def fold_heads(conn: sqlite3.Connection) -> None:
    """Bring `chain_heads` up to the end of the log, inside the caller's transaction."""
    conn.execute(Q["fold_chain_heads"])
    conn.execute(Q["set_chain_heads_position"])


def save_heads(conn: sqlite3.Connection, chain: ChainHeads) -> None:
    """Write the heads `chain` moved, which linked every event of the log after the
    folded position (an upgrade hashing old events, an import into an empty log): the
    heads are then exact as of the end of the log."""
    conn.executemany(Q["set_chain_head"], ((t, *chain.heads[t]) for t in chain.moved))
    chain.moved.clear()
    conn.execute(Q["set_chain_heads_position"])


def backfill(conn: sqlite3.Connection, audit_key: bytes | None = None) -> int:
    """Hash every event that has no hash yet (written before the chain existed), in log
    order, inside the caller's transaction; return how many were hashed."""
    heads = stored_heads(conn, audit_key)
    count = after = 0
    while rows := conn.execute(Q["unhashed_events"], (after, BACKFILL_PAGE)).fetchall():
        updates = [
            (heads.link(tenant_id, seq, bytes(data))[0], seq) for seq, tenant_id, data in rows
        ]
        conn.executemany(Q["set_event_hash"], updates)
        count += len(rows)
        after = rows[-1][0]
    save_heads(conn, heads)
    return count
