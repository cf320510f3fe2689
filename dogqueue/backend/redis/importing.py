"""Moving a log to Redis: another backend's events, byte for byte and in the same log
order, into an empty queue; then the projection is rebuilt from them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dogqueue.backend.kit.ordering import in_log_order
from dogqueue.backend.redis.backend import RedisBackend
from dogqueue.backend.redis.keys import tenant_part
from dogqueue.backend.redis.sequencer import pack_head, text
from dogqueue.core.codec import encode_event
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.log.chain import ChainHeads

#: Events written per round trip.
IMPORT_PAGE = 2_000


async def import_events(backend: RedisBackend, events: Iterable[AnyEvent]) -> int:
    """Append `events` (a whole log in log order, e.g. `await sqlite.read_events()`) to
    the empty queue of `backend`, keeping their order as the log positions 1, 2, ...,
    chain them under the backend's audit key, rebuild the projection; return how many
    were imported. Refuses a queue that holds anything."""
    await backend.open()
    client, keys = backend.client, backend.keys
    if int(await client.get(keys.pos) or 0) or await client.scard(keys.tenants):
        raise StorageError(f"the Redis queue {backend.prefix!r} is not empty")
    tpos: dict[str, int] = {}
    chains = ChainHeads(backend.audit_key)
    runs: list[Any] = []
    pos = 0
    pipe = client.pipeline(transaction=False)
    for event in in_log_order(events):
        tenant = event.tenant_id
        if tenant not in tpos:
            await client.sadd(keys.tenants, tenant)
        tpos[tenant] = at = tpos.get(tenant, 0) + 1
        pos += 1
        data = encode_event(event)
        fields = {"j": event.job_id, "v": event.version, "t": event.type, "d": data, "c": 0}
        pipe.xadd(keys.tenant_log(tenant), fields, id=f"{at}-0")
        digest, _ = chains.link(tenant, pos, data)
        if runs and runs[-5] == tenant:
            runs[-2] += 1
            runs[-1] += digest
        else:
            runs += [tenant_part(tenant), tenant, at, pos, 1, digest]
        if len(pipe) >= IMPORT_PAGE:
            await pipe.execute()
    for tenant, count in tpos.items():
        pipe.set(keys.of(tenant, "n"), count)
    await pipe.execute()
    heads: list[Any] = []
    for tenant, (last_pos, digest, at) in chains.heads.items():
        heads += (tenant, pack_head(at, last_pos, digest))
    script = backend._scripts["seal"]
    touched = sorted(keys.runs(tenant) for tenant in tpos)
    reply = await script(
        keys=[keys.pos, keys.log, keys.heads, *touched],
        args=[keys.glob, 0, pos, len(runs) // 6, *runs, len(heads) // 2, *heads],
    )
    if text(reply[0]) != "ok":
        raise StorageError("another writer numbered events during the import")
    await backend.rebuild_projections()
    return pos
