"""Workers' presence records on Redis: a hash of records by worker id and a sorted set
of worker ids by last-seen time, both under the queue's global hash tag (one slot)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dogqueue.backend.kit.rows import to_micros
from dogqueue.backend.redis.connect import DRIVER_ERRORS
from dogqueue.backend.redis.keys import Keys
from dogqueue.core.errors import StorageError


async def announce_worker(
    client: Any,
    keys: Keys,
    worker_id: str,
    last_seen: datetime,
    data: bytes,
    forget_before: datetime,
) -> None:
    """Store the record and its last-seen time; forget those not seen since
    `forget_before`."""
    records, seen = keys.glob + ":workers", keys.glob + ":workers_seen"
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(records, worker_id, data)
            pipe.zadd(seen, {worker_id: to_micros(last_seen)})
            await pipe.execute()
        stale = await client.zrangebyscore(seen, "-inf", f"({to_micros(forget_before)}")
        if stale:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hdel(records, *stale)
                pipe.zrem(seen, *stale)
                await pipe.execute()
    except DRIVER_ERRORS as error:
        raise StorageError(f"Redis: {error}") from error


async def read_workers(client: Any, keys: Keys, seen_since: datetime) -> list[bytes]:
    """The records seen at or after `seen_since`."""
    records, seen = keys.glob + ":workers", keys.glob + ":workers_seen"
    try:
        ids = await client.zrangebyscore(seen, to_micros(seen_since), "+inf")
        if not ids:
            return []
        found = await client.hmget(records, ids)
    except DRIVER_ERRORS as error:
        raise StorageError(f"Redis: {error}") from error
    return [bytes(data) for data in found if data is not None]
