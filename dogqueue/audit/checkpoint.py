"""Checkpoints: a log's chain heads written down outside the database.

A hash chain alone cannot tell a truncated or wholly rewritten log from an honest one;
a checkpoint kept elsewhere (another machine, a ticket, a printout) can. Its format is
JSON: the last log position and each tenant's head (position and hash, in hex).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import msgspec

from dogqueue.core.errors import InvalidInput
from dogqueue.log.reader import LogReader

#: The `format` field of a checkpoint file.
CHECKPOINT_FORMAT = "dogqueue-checkpoint/1"


class Checkpoint(msgspec.Struct, frozen=True):
    """The last log position seen and each tenant's chain head at that moment."""

    seq: int
    heads: dict[str, tuple[int, bytes]]


def checkpoint_of(seq: int, heads: Mapping[str, tuple[int, bytes]]) -> Checkpoint:
    """A checkpoint of a log whose last position is `seq`."""
    return Checkpoint(seq=seq, heads=dict(heads))


async def take_checkpoint(log: LogReader) -> Checkpoint:
    """The log's last position and chain heads now (a tenant whose head event was moved
    to an archive keeps it, from the anchor that stands in for it)."""
    async with log.snapshot():
        heads = await log.chain_heads()
        last = await log.last_position()
        for anchor in await log.anchors():
            heads.setdefault(anchor.tenant_id, (anchor.seq, anchor.hash))
    return checkpoint_of(max([last, *(seq for seq, _ in heads.values())]), heads)


def dump_checkpoint(checkpoint: Checkpoint) -> str:
    """The checkpoint as JSON text."""
    document = {
        "format": CHECKPOINT_FORMAT,
        "seq": checkpoint.seq,
        "heads": {
            tenant: {"seq": seq, "hash": digest.hex()}
            for tenant, (seq, digest) in sorted(checkpoint.heads.items())
        },
    }
    return json.dumps(document, indent=2) + "\n"


def load_checkpoint(text: str) -> Checkpoint:
    """A checkpoint from JSON text; InvalidInput("checkpoint") if it is not one."""
    try:
        document = json.loads(text)
        if document.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format is not {CHECKPOINT_FORMAT!r}")
        heads = {
            str(tenant): (int(head["seq"]), bytes.fromhex(head["hash"]))
            for tenant, head in document["heads"].items()
        }
        return Checkpoint(seq=int(document["seq"]), heads=heads)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidInput("checkpoint", f"is not a dogqueue checkpoint: {error}") from error
