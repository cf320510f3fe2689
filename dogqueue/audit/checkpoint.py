"""Checkpoints: a log's chain heads written down outside the database.

A hash chain alone cannot tell a truncated or wholly rewritten log from an honest one;
a checkpoint kept elsewhere (another machine, a ticket, a printout) can. Its format is
JSON: the last log position and each tenant's head (position and hash, in hex).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from dogqueue.core.errors import InvalidInput
from dogqueue.log import archive as archival
from dogqueue.log.archive import ArchiveCut
from dogqueue.log.chain import GENESIS
from dogqueue.log.reader import LogReader

#: The `format` field of a checkpoint file.
CHECKPOINT_FORMAT = "dogqueue-checkpoint/1"


class Checkpoint(msgspec.Struct, frozen=True):
    """The last log position seen, each tenant's chain head at that moment, and the
    head of the chain of archival records (how many, and their hash; None in a
    checkpoint that predates it)."""

    seq: int
    heads: dict[str, tuple[int, bytes]]
    cuts: tuple[int, bytes] | None = None


def checkpoint_of(
    seq: int,
    heads: Mapping[str, tuple[int, bytes]],
    cuts: tuple[int, bytes] | None = None,
) -> Checkpoint:
    """A checkpoint of a log whose last position is `seq`."""
    return Checkpoint(seq=seq, heads=dict(heads), cuts=cuts)


def cuts_head(cuts: Iterable[ArchiveCut]) -> tuple[int, bytes]:
    """The chain of a log's archival records, oldest first: how many, and the last
    link's hash. Each link covers the one before and every field of its record (what
    was cut, where it went, and the archive's fingerprint), so a checkpoint holding it
    proves the archivals it saw were neither changed nor removed, nor new ones slipped
    in before them."""
    count, digest = 0, GENESIS
    for cut in cuts:
        record = msgspec.msgpack.encode([_plain(value) for value in cut])
        count, digest = count + 1, hashlib.sha256(digest + record).digest()
    return count, digest


async def take_checkpoint(log: LogReader) -> Checkpoint:
    """The log's last position and chain heads now (a tenant whose head event was moved
    to an archive keeps it, from the anchor that stands in for it)."""
    async with log.snapshot():
        heads = await log.chain_heads()
        last = await log.last_position()
        for anchor in await archival.anchors(log):
            heads.setdefault(anchor.tenant_id, (anchor.pos, anchor.hash))
        cuts = await archival.archive_cuts(log)
    return checkpoint_of(
        max([last, *(seq for seq, _ in heads.values())]), heads, cuts_head(cuts) if cuts else None
    )


def _plain(value: object) -> object:
    """A stored field as msgpack encodes it the same on every backend."""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else value


def dump_checkpoint(checkpoint: Checkpoint) -> str:
    """The checkpoint as JSON text."""
    document: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "seq": checkpoint.seq,
        "heads": {
            tenant: {"seq": seq, "hash": digest.hex()}
            for tenant, (seq, digest) in sorted(checkpoint.heads.items())
        },
    }
    if checkpoint.cuts is not None:
        count, digest = checkpoint.cuts
        document["archive_cuts"] = {"count": count, "hash": digest.hex()}
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
        cuts = document.get("archive_cuts")
        return Checkpoint(
            seq=int(document["seq"]),
            heads=heads,
            cuts=None if cuts is None else (int(cuts["count"]), bytes.fromhex(cuts["hash"])),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidInput("checkpoint", f"is not a dogqueue checkpoint: {error}") from error
