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
import hmac
import os
from collections.abc import Iterable

from dogqueue.core.errors import InvalidInput

#: The "previous hash" of a tenant's first event.
GENESIS = bytes(32)
#: Bytes in a chain hash (SHA-256).
HASH_SIZE = 32


#: The shortest audit key accepted, in bytes.
MIN_AUDIT_KEY_BYTES = 16
#: The environment variable naming a file that holds the audit key, read by the
#: command line (`verify`, and every command that writes).
AUDIT_KEY_ENV = "DOGQUEUE_AUDIT_KEY_FILE"


def chain_hash(previous: bytes, seq: int, data: bytes, key: bytes | None = None) -> bytes:
    """The hash of the event with canonical bytes `data` at log position `seq`, following
    the hash `previous` of its tenant's chain (GENESIS for the tenant's first event).

    With an audit `key`, the link is an HMAC-SHA256 under it instead of a plain SHA-256:
    whoever lacks the key cannot compute a valid link, so cannot append, rewrite or
    rechain events undetected by a verifier holding the key."""
    position = seq.to_bytes(8, "big")
    if key is not None:
        return hmac.new(key, previous + position + data, hashlib.sha256).digest()
    digest = hashlib.sha256(previous)
    digest.update(position)
    digest.update(data)
    return digest.digest()


def check_audit_key(key: object) -> bytes | None:
    """`key` as bytes if it is a valid audit key (None: no key); else InvalidInput."""
    if key is None:
        return None
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_AUDIT_KEY_BYTES:
        raise InvalidInput("audit_key", f"must be bytes, at least {MIN_AUDIT_KEY_BYTES} long")
    return bytes(key)


def read_audit_key(path: str | os.PathLike[str] | None = None) -> bytes | None:
    """The audit key in the file at `path` (default: the file `$DOGQUEUE_AUDIT_KEY_FILE`
    names; None when neither is set): its bytes, without trailing line breaks."""
    path = path or os.environ.get(AUDIT_KEY_ENV) or None
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            key = file.read().rstrip(b"\r\n")
    except OSError as error:
        raise InvalidInput("audit_key", f"the key file cannot be read: {error}") from error
    return check_audit_key(key)


def seq_hash_digest(pairs: Iterable[tuple[int, bytes]]) -> bytes:
    """SHA-256 over (position, hash) pairs in log order: an archive file's fingerprint."""
    digest = hashlib.sha256()
    for seq, value in pairs:
        digest.update(seq.to_bytes(8, "big"))
        digest.update(value)
    return digest.digest()
