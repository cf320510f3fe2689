"""The sequencer: gives committed events their dense, commit-ordered position (`pos`),
their tenant position (`tpos`) and their link in the tenant's hash chain.

Writers never touch a position or a chain head, so they run in parallel; one sequencer
step at a time (any host may run it: it locks the log head) reads the events of
transactions older than every running one, in (xid, seq) order, and numbers them. An
event whose job's previous version is not numbered yet waits for it, so positions
always follow each job's versions. The tamper window is between an event's commit and
its step (typically under 100 ms); `unsealed()` lists what is inside it.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from dogqueue.backend.kit.rows import columns
from dogqueue.backend.postgres.queries import Q
from dogqueue.log.chain import ChainHeads

#: Events numbered per step at most.
STEP_LIMIT = 5_000
#: A step holds the log head's lock, which every host's steps wait for. If the process
#: running one stops mid-step (its event loop blocked, the process stopped), the server
#: ends that session after this long idle, so the others go on.
IDLE_STEP_LIMIT_MS = 5_000


async def bound_idle_step(conn: asyncpg.Connection) -> None:
    """Make the server end this transaction's session if it idles IDLE_STEP_LIMIT_MS."""
    await conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {int(IDLE_STEP_LIMIT_MS)}")


async def seal(conn: asyncpg.Connection, audit_key: bytes | None = None) -> int:
    """Run one sequencer step in its own transaction, chaining under `audit_key` if
    given; return how many events it numbered."""
    async with conn.transaction():
        await bound_idle_step(conn)
        head = await conn.fetchrow(Q["lock_log_head"])
        last_pos, cursor_xid, cursor_seq = int(head[0]), str(head[1]), int(head[2])
        rows = await conn.fetch(Q["sealable"], cursor_xid, cursor_seq, STEP_LIMIT)
        if not rows:
            return 0
        order = _in_version_order(rows)
        tenants = sorted({row["tenant_id"] for row in order})
        stored: dict[str, tuple[bytes, int]] = {
            str(r["tenant_id"]): (bytes(r["hash"]), int(r["tpos"]))
            for r in await conn.fetch(Q["heads_of_tenants"], tenants)
        }
        chain = ChainHeads(audit_key, stored.get)
        log_rows: list[tuple[int, int, str, int, bytes]] = []
        pos = last_pos
        for row in order:
            pos += 1
            tenant = str(row["tenant_id"])
            digest, tpos = chain.link(tenant, pos, bytes(row["data"]))
            log_rows.append((pos, int(row["seq"]), tenant, tpos, digest))
        await conn.execute(Q["insert_log"], *columns(log_rows, 5))
        moved = sorted(chain.moved)
        await conn.execute(
            Q["save_heads"],
            moved,
            [chain.heads[t][0] for t in moved],
            [chain.heads[t][2] for t in moved],
            [chain.heads[t][1] for t in moved],
        )
        cursor = _cursor(rows, {int(row["seq"]) for row in order}, (cursor_xid, cursor_seq))
        await conn.execute(Q["move_cursor"], pos, cursor[0], cursor[1])
        return len(order)


def _in_version_order(rows: list[Any]) -> list[Any]:
    """The rows that can be numbered now, in (xid, seq) order except that an event
    follows its job's previous version when both are here; an event whose previous
    version is neither numbered nor here waits for a later step."""
    here = {(r["tenant_id"], r["job_id"], r["version"]): r for r in rows}
    placed: set[tuple[str, str, int]] = set()
    order: list[Any] = []

    def place(row: Any) -> None:
        key = (row["tenant_id"], row["job_id"], row["version"])
        if key in placed:
            return
        previous = (row["tenant_id"], row["job_id"], row["version"] - 1)
        if not row["ready"]:
            if previous not in here:
                return
            place(here[previous])
            if previous not in placed:
                return
        placed.add(key)
        order.append(row)

    for row in rows:
        place(row)
    return order


def _cursor(rows: list[Any], numbered: set[int], cursor: tuple[str, int]) -> tuple[str, int]:
    """The new cursor: past every row up to the first one left waiting."""
    for row in rows:
        if int(row["seq"]) not in numbered:
            break
        cursor = (str(row["xid"]), int(row["seq"]))
    return cursor
