"""The sequencer: gives every event appended to a tenant's stream its log position
(`pos`, dense across tenants) and its link in the tenant's hash chain.

Writers append to their tenant's stream only (one shard), with dense tenant positions,
so they never wait for each other across tenants. A step (any process may run one; the
step's script refuses to record a step that another one overtook) reads each tenant's
events past its chain head, numbers them in the order they were committed (each tenant's
in its own order), hashes them (Lua has no SHA-256, so the chain is computed here) and
records them as runs (consecutive events of one tenant at consecutive positions) and the
new heads on the log's global keys in one script call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dogqueue.backend.redis.keys import Keys, tenant_part
from dogqueue.log.chain import GENESIS, ChainHeads

#: Events numbered per step at most.
STEP_LIMIT = 5_000

#: Events a writer flushed and has not seen numbered yet, per tenant: tenant position ->
#: (commit time, data), exactly as stored. A step uses them instead of reading them back.
Known = dict[str, dict[int, tuple[int, bytes]]]


async def _pending(
    client: Any, keys: Keys, behind: list[tuple[str, tuple[int, int, bytes], int]], known: Known
) -> list[tuple[int, str, int, bytes]]:
    """The events past each tenant's head, up to STEP_LIMIT in all, as (commit time,
    tenant, tenant position, data): from `known` where it holds them all, else read."""
    budget = STEP_LIMIT
    spans: list[tuple[str, int, int, dict[int, tuple[int, bytes]] | None]] = []
    async with client.pipeline(transaction=False) as pipe:
        for name, head, count in behind:
            end = min(count, head[0] + max(1, budget))
            budget -= end - head[0]
            mine = known.get(name, {})
            if all(tpos in mine for tpos in range(head[0] + 1, end + 1)):
                spans.append((name, head[0], end, mine))
            else:
                spans.append((name, head[0], end, None))
                pipe.xrange(keys.tenant_log(name), f"{head[0] + 1}-0", f"{end}-0")
        entries = iter(await pipe.execute())
    pending: list[tuple[int, str, int, bytes]] = []
    for name, tpos, end, cached in spans:
        if cached is not None:
            rows = [(tpos_, cached[tpos_]) for tpos_ in range(tpos + 1, end + 1)]
        else:
            rows = [
                (int(text(entry_id).split("-")[0]), (int(fields.get(b"c", 0)), bytes(fields[b"d"])))
                for entry_id, fields in next(entries)
            ]
        order = 0
        for at, (committed, data) in rows:
            if at != tpos + 1:
                break  # a gap (an event deleted before it was numbered): stop at it
            tpos += 1
            order = max(order, committed)  # never before the tenant's last
            pending.append((order, name, tpos, data))
    return pending


def pack_head(tpos: int, pos: int, digest: bytes) -> bytes:
    """A tenant's chain head as stored: tenant position, log position, hash."""
    return tpos.to_bytes(8, "big") + pos.to_bytes(8, "big") + digest


def unpack_head(value: bytes | None) -> tuple[int, int, bytes]:
    """(tenant position, log position, hash) of a stored head (zeros and GENESIS if none)."""
    if not value:
        return 0, 0, GENESIS
    return int.from_bytes(value[:8], "big"), int.from_bytes(value[8:16], "big"), value[16:]


def text(value: Any) -> str:
    """A reply value as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def seal_step(
    client: Any,
    keys: Keys,
    script: Any,
    audit_key: bytes | None,
    tenants: Iterable[str] | None = None,
    known: Known | None = None,
) -> int | None:
    """One step over `tenants` (default: every registered tenant); how many events it
    numbered, or None if another step recorded first (the seal script compares the
    last position it read: steps need no lock, and a loser only did its work twice).
    Events in `known` are not read back; its entries numbered by now are dropped."""
    async with client.pipeline(transaction=False) as pipe:  # one slot, one round trip
        pipe.smembers(keys.tenants)
        pipe.get(keys.pos)
        pipe.hgetall(keys.heads)
        registered, stored_last, stored_heads = await pipe.execute()
    names = sorted({text(t) for t in registered} if tenants is None else set(tenants))
    last = int(stored_last or 0)
    heads = [unpack_head(stored_heads.get(name.encode())) for name in names]
    known = {} if known is None else known
    for name, events in known.items():
        sealed = unpack_head(stored_heads.get(name.encode()))[0]
        for tpos in [t for t in events if t <= sealed]:
            del events[tpos]
    if not names:
        return 0
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(keys.of(name, "n"))
        counts = [int(n or 0) for n in await pipe.execute()]
    behind = [
        (name, head, count)
        for name, head, count in zip(names, heads, counts, strict=True)
        if count > head[0]
    ]
    if not behind:
        return 0
    pending = await _pending(client, keys, behind, known)
    pending.sort()  # commit order across tenants; each tenant's stays as it is
    chains = ChainHeads(audit_key, heads={name: (h[1], h[2], h[0]) for name, h, _ in behind})
    pos = last
    runs: list[Any] = []
    for _, name, tpos, data in pending:
        pos += 1
        digest, _ = chains.link(name, pos, data)
        if runs and runs[-5] == name and runs[-3] + runs[-2] == pos:
            runs[-2] += 1
            runs[-1] += digest
        else:
            runs += [tenant_part(name), name, tpos, pos, 1, digest]
    new_heads: list[Any] = []
    for name in sorted(chains.moved):
        at, digest, tpos = chains.heads[name]
        new_heads += (name, pack_head(tpos, at, digest))
    if not runs:
        return 0
    touched = {keys.runs(name) for name in chains.moved}
    reply = await script(
        keys=[keys.pos, keys.log, keys.heads, *sorted(touched)],  # see workingset.declared_keys
        args=[keys.glob, last, pos, len(runs) // 6, *runs, len(new_heads) // 2, *new_heads],
        client=client,
    )
    return pos - last if text(reply[0]) == "ok" else None
