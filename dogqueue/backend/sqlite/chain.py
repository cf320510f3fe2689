"""The hash chain on SQLite: extending each tenant's chain (and its tenant positions)
inside a write transaction, and hashing events written before the chain existed."""

from __future__ import annotations

import sqlite3

from dogqueue.backend.sqlite.queries import Q
from dogqueue.log.chain import GENESIS, chain_hash

#: Events hashed per query when an old log is upgraded.
BACKFILL_PAGE = 10_000


class ChainHeads:
    """The chain heads one write transaction reads and extends. The transaction holds
    the write lock, so each tenant's head is read at most once per transaction. A head
    also carries the tenant position of its event, so the next tenant position is +1."""

    def __init__(self, audit_key: bytes | None = None) -> None:
        self._key = audit_key
        #: tenant -> (seq, hash, tpos) of its latest event
        self._heads: dict[str, tuple[int, bytes, int]] = {}
        self._touched: set[str] = set()

    def clear(self) -> None:
        """Forget every head (at begin and rollback)."""
        self._heads.clear()
        self._touched.clear()

    def start_from(self, heads: dict[str, tuple[int, bytes, int]]) -> None:
        """Begin a transaction with heads known to be current; `heads` is extended in
        place, so after the commit it holds the stored heads again."""
        self._heads = heads
        self._touched.clear()

    def link(
        self, conn: sqlite3.Connection, tenant_id: str, seq: int, data: bytes
    ) -> tuple[bytes, int]:
        """The hash and tenant position of the tenant's next event, which becomes the
        tenant's head."""
        head = self._heads.get(tenant_id)
        if head is None:
            row = conn.execute(Q["chain_head"], (tenant_id,)).fetchone()
            previous, tpos = (GENESIS, 0) if row is None else (bytes(row[0]), int(row[1]))
        else:
            previous, tpos = head[1], head[2]
        digest = chain_hash(previous, seq, data, self._key)
        self._heads[tenant_id] = (seq, digest, tpos + 1)
        self._touched.add(tenant_id)
        return digest, tpos + 1

    def save(self, conn: sqlite3.Connection) -> None:
        """Write the heads this transaction moved."""
        if self._touched:
            conn.executemany(
                Q["set_chain_head"],
                ((tenant, *self._heads[tenant]) for tenant in self._touched),
            )
            self._touched.clear()


def backfill(conn: sqlite3.Connection, audit_key: bytes | None = None) -> int:
    """Hash every event that has no hash yet (written before the chain existed), in log
    order, inside the caller's transaction; return how many were hashed."""
    heads = ChainHeads(audit_key)
    count = after = 0
    while rows := conn.execute(Q["unhashed_events"], (after, BACKFILL_PAGE)).fetchall():
        updates = [
            (heads.link(conn, tenant_id, seq, bytes(data))[0], seq) for seq, tenant_id, data in rows
        ]
        conn.executemany(Q["set_event_hash"], updates)
        count += len(rows)
        after = rows[-1][0]
    heads.save(conn)
    return count
