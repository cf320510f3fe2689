"""The hash chain that makes the log tamper-evident.

Scope: one chain per tenant. Each event's hash covers the previous hash of its tenant's
chain, its global log position (`seq`) and its canonical bytes (which name its tenant and
job). Per tenant, not global, because a multi-host backend (PostgreSQL) would otherwise
serialize every writer of every tenant on one chain head; tenants are already the unit
that never shares a job, so their writers can extend their own chains in parallel. Per job
would be cheaper still, but then deleting a whole job's history would leave no broken
link behind. Within a tenant, the chain still catches deleted, swapped, altered and
forged events; a truncated tail needs an outside checkpoint, as with any hash chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

#: The "previous hash" of a tenant's first event.
GENESIS = bytes(32)
#: Bytes in a chain hash (SHA-256).
HASH_SIZE = 32


def chain_hash(previous: bytes, seq: int, data: bytes) -> bytes:
    """The hash of the event with canonical bytes `data` at log position `seq`, following
    the hash `previous` of its tenant's chain (GENESIS for the tenant's first event)."""
    digest = hashlib.sha256(previous)
    digest.update(seq.to_bytes(8, "big"))
    digest.update(data)
    return digest.digest()


def seq_hash_digest(pairs: Iterable[tuple[int, bytes]]) -> bytes:
    """SHA-256 over (position, hash) pairs in log order: an archive file's fingerprint."""
    digest = hashlib.sha256()
    for seq, value in pairs:
        digest.update(seq.to_bytes(8, "big"))
        digest.update(value)
    return digest.digest()
