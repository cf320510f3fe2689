"""What archival leaves on a Redis queue's global keys, as stored and as read: the moved
position ranges (one string of packed pairs, merged), the anchors (a hash from position
to tenant and hash) and the cuts (a list, oldest first)."""

from __future__ import annotations

from typing import Any

import msgspec

from dogqueue.backend.redis.keys import Keys
from dogqueue.backend.redis.sequencer import text
from dogqueue.log.archive import Anchor, ArchiveCut

_PAIR = 16


def pack_ranges(ranges: list[tuple[int, int]]) -> bytes:
    """Inclusive ranges as stored: each first and last position, 8 bytes big-endian."""
    return b"".join(a.to_bytes(8, "big") + b.to_bytes(8, "big") for a, b in ranges)


def unpack_ranges(value: bytes | None) -> list[tuple[int, int]]:
    """The inclusive ranges of a stored value (none if missing)."""
    data = value or b""
    return [
        (int.from_bytes(data[i : i + 8], "big"), int.from_bytes(data[i + 8 : i + _PAIR], "big"))
        for i in range(0, len(data), _PAIR)
    ]


def pack_anchor(tenant_id: str, digest: bytes) -> bytes:
    """An anchor's value in the anchors hash (its position is the field)."""
    return msgspec.msgpack.encode((tenant_id, digest))


def pack_cut(cut: ArchiveCut) -> bytes:
    """A cut as stored in the cuts list (its id is its place in the list)."""
    return msgspec.msgpack.encode(tuple(cut)[1:])


async def read_anchors(client: Any, keys: Keys) -> list[Anchor]:
    """The queue's anchors, in position order."""
    stored = await client.hgetall(keys.anchors)
    found = []
    for pos, value in stored.items():
        tenant_id, digest = msgspec.msgpack.decode(value)
        found.append(Anchor(int(text(pos)), str(tenant_id), bytes(digest)))
    return sorted(found)


async def read_ranges(client: Any, keys: Keys) -> list[tuple[int, int]]:
    """The position ranges moved out, merged, in order."""
    return unpack_ranges(await client.get(keys.archived))


async def read_cuts(client: Any, keys: Keys) -> list[ArchiveCut]:
    """Every cut, oldest first, numbered from 1."""
    stored = await client.lrange(keys.cuts, 0, -1)
    cuts = []
    for index, value in enumerate(stored, start=1):
        at, before, archive, jobs, events, head, count, digest = msgspec.msgpack.decode(value)
        cuts.append(
            ArchiveCut(index, at, before, archive, jobs, events, bytes(head), count, bytes(digest))
        )
    return cuts
