"""The sequencer: gives committed events their dense position (`pos`), their tenant
position (`tpos`) and their link in the tenant's hash chain.

Writers never touch a position or a chain head, so they run in parallel; one sequencer
step at a time (any host may run it: it locks the log head) numbers every committed
event not numbered yet. It waits for nothing: a step reads the events after its cursor,
in (xid, seq) order, and remembers as `pending` the transactions that hold a write lock
on this queue's `events` (this queue's own writers in flight, seen in pg_locks), whose
events the next step looks up by xid even if the cursor has passed them. Transactions
that wrote nothing here (another database, another schema, an app's report, an idle
session) are never looked at. Every dogqueue writer takes that lock before it has an
xid; an app transaction that had one before its first write here registers in
`late_writers` instead. An event whose job's previous version is not numbered yet waits
for it, so positions always follow each job's versions. The tamper window is between an
event's commit and its step (typically under 100 ms); `unsealed()` lists what is inside
it.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from dogqueue.backend.postgres.packing import pack_ints, pack_names
from dogqueue.backend.postgres.queries import Q
from dogqueue.log.chain import ChainHeads

#: Events numbered per step at most.
STEP_LIMIT = 5_000
#: A step holds the log head's lock, which every host's steps wait for. If the process
#: running one stops mid-step (its event loop blocked, the process stopped), the server
#: ends that session after this long idle, so the others go on.
IDLE_STEP_LIMIT_MS = 5_000


async def bound_idle_step(conn: asyncpg.Connection) -> None:
    """Make the server end this transaction's session if it idles IDLE_STEP_LIMIT_MS, and
    plan the step's statements for their parameters, as ordered index ranges cut at the
    step's limit, without JIT."""
    # A generic plan of `sealable` scans every event ever written; a bitmap scan reads
    # every event past the cursor and sorts them (stale statistics under-count them), so
    # a step far behind read 33,000 rows for 5,000; JIT compiled each step (~8 ms).
    await conn.execute(
        f"SET LOCAL idle_in_transaction_session_timeout = {int(IDLE_STEP_LIMIT_MS)};"
        " SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off;"
        " SET LOCAL enable_bitmapscan = off"
    )


async def seal(
    conn: asyncpg.Connection, audit_key: bytes | None = None, *, wait: bool = True
) -> int:
    """Run one sequencer step in its own transaction, chaining under `audit_key` if
    given; return how many events it numbered. Without `wait`, a step another session
    is running makes this one return 0 at once."""
    async with conn.transaction():
        await bound_idle_step(conn)
        head = await conn.fetchrow(Q["lock_log_head"] if wait else Q["try_lock_log_head"])
        if head is None:
            return 0
        last_pos, cursor = int(head[0]), (str(head[1]), int(head[2]))
        horizon, writers = await conn.fetchrow(Q["own_writers"])
        late = [str(r[0]) for r in await conn.fetch(Q["late_writers"])]
        look_up = sorted({*head[3], *late})
        rows = await conn.fetch(Q["sealable"], *cursor, horizon, look_up, STEP_LIMIT)
        order = _in_version_order(rows)
        numbered = {int(row["seq"]) for row in order}
        waiting = {
            str(r["xid"]) for r in rows if not r["after_cursor"] and int(r["seq"]) not in numbered
        }
        cut = len(rows) >= STEP_LIMIT  # xids looked up may have events past the cut
        moved = _cursor([r for r in rows if r["after_cursor"]], numbered, cursor)
        # The step's rows as columns of scalars: its Records go before the step's next
        # await, instead of living through it into the collector's oldest generation.
        seqs = [row["seq"] for row in order]
        tenant_ids = [row["tenant_id"] for row in order]
        data = [row["data"] for row in order]
        del rows, order
        pending = sorted({*writers, *waiting, *(look_up if cut else ())})
        if late and not cut:
            await conn.execute(Q["forget_late_writers"], sorted(set(late) - waiting))
        pos = await _number(conn, audit_key, seqs, tenant_ids, data, last_pos) if seqs else last_pos
        if seqs or moved != cursor or pending != sorted(head[3]):  # else leave the row be
            await conn.execute(Q["move_cursor"], pos, moved[0], moved[1], pending)
        return len(seqs)


async def _number(
    conn: asyncpg.Connection,
    audit_key: bytes | None,
    seqs: list[int],
    tenant_ids: list[str],
    data: list[bytes],
    last_pos: int,
) -> int:
    """Give the events `seqs` (of `tenant_ids`, with `data`), in this order, the
    positions after `last_pos` and extend the chains; return the last position given."""
    tenants = sorted(set(tenant_ids))
    stored: dict[str, tuple[bytes, int]] = {
        str(r["tenant_id"]): (bytes(r["hash"]), int(r["tpos"]))
        for r in await conn.fetch(Q["heads_of_tenants"], tenants)
    }
    chain = ChainHeads(audit_key, stored.get)
    # The log rows column by column (no row tuples to transpose); positions are dense.
    tposs: list[int] = []
    digests: list[bytes] = []
    pos = last_pos
    for tenant, event in zip(tenant_ids, data, strict=True):
        pos += 1
        digest, tpos = chain.link(tenant, pos, event)
        tposs.append(tpos)
        digests.append(digest)
    await conn.execute(
        Q["insert_log"],
        pack_ints(range(last_pos + 1, pos + 1)),
        pack_ints(seqs),
        pack_names(tenant_ids),
        pack_ints(tposs),
        digests,
    )
    moved = sorted(chain.moved)
    await conn.execute(
        Q["save_heads"],
        moved,
        [chain.heads[t][0] for t in moved],
        [chain.heads[t][2] for t in moved],
        [chain.heads[t][1] for t in moved],
    )
    return pos


def _in_version_order(rows: list[Any]) -> list[Any]:
    """The rows that can be numbered now, in (xid, seq) order except that an event
    follows its job's previous version when both are here; an event whose previous
    version is neither numbered nor here waits for a later step."""
    # A job's versions are placed in order, so the highest placed stands for them all;
    # rows are looked up by version only when one comes before its previous (rare: its
    # transaction had an older xid), and no key of three is built per row.
    top: dict[tuple[str, str], int] = {}  # per job, the highest version placed
    here: dict[tuple[str, str, int], Any] | None = None
    order: list[Any] = []
    for row in rows:
        job, version = (row["tenant_id"], row["job_id"]), row["version"]
        last = top.get(job)
        if last is not None and last >= version:
            continue  # placed already, before a later version that came first
        if row["ready"] or last == version - 1:
            top[job] = version
            order.append(row)
            continue
        if here is None:
            here = {(r["tenant_id"], r["job_id"], r["version"]): r for r in rows}
        waiting = [row]  # this row, then the earlier versions it needs first
        while not waiting[-1]["ready"] and top.get(job) != waiting[-1]["version"] - 1:
            previous = here.get((*job, waiting[-1]["version"] - 1))
            if previous is None:  # neither numbered nor here: all of them wait
                waiting.clear()
                break
            waiting.append(previous)
        for earlier in reversed(waiting):
            top[job] = earlier["version"]
            order.append(earlier)
    return order


def _cursor(rows: list[Any], numbered: set[int], cursor: tuple[str, int]) -> tuple[str, int]:
    """The new cursor: past every row up to the first one left waiting."""
    last = None
    for row in rows:
        if row["seq"] not in numbered:
            break
        last = row
    return cursor if last is None else (str(last["xid"]), int(last["seq"]))
