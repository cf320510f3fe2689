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
from collections.abc import Callable, Iterable

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
    # One buffer hashed in one call: a third less time than three updates for an event
    # of a few hundred bytes (the copy costs less than the calls; less than the hashing
    # for any size).
    message = previous + seq.to_bytes(8, "big") + data
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).digest()
    return hashlib.sha256(message).digest()


#: A tenant's chain head as its backend stores it: (hash, tenant position), or None
#: for a tenant with no event yet.
LoadHead = Callable[[str], "tuple[bytes, int] | None"]


class ChainHeads:
    """Each tenant's chain head, extended one event at a time: the one chain extender of
    every backend and of `verify`. A head is (position, hash, tenant position) of the
    tenant's latest event; a tenant not in `heads` is looked up with `load_head` (a
    backend's stored head; by default every tenant starts at GENESIS)."""

    def __init__(
        self,
        audit_key: bytes | None = None,
        load_head: LoadHead | None = None,
        heads: dict[str, tuple[int, bytes, int]] | None = None,
    ) -> None:
        self.audit_key = audit_key
        self._load_head = load_head
        #: tenant -> (position, hash, tenant position) of its latest event
        self.heads: dict[str, tuple[int, bytes, int]] = {} if heads is None else heads
        #: Tenants whose head `link` or `move` changed since `moved` was last cleared.
        self.moved: set[str] = set()

    def restart(self, heads: dict[str, tuple[int, bytes, int]] | None = None) -> None:
        """Forget every head, or start from `heads` known to be current (extended in
        place from now on)."""
        self.heads = {} if heads is None else heads
        self.moved.clear()

    def next_link(self, tenant_id: str, position: int, data: bytes) -> tuple[bytes, int]:
        """The hash and tenant position the tenant's next event (canonical bytes `data`,
        at log `position`) gets; the head does not move."""
        head = self.heads.get(tenant_id)
        if head is not None:
            previous, tpos = head[1], head[2]
        else:
            stored = None if self._load_head is None else self._load_head(tenant_id)
            previous, tpos = (GENESIS, 0) if stored is None else stored
        return chain_hash(previous, position, data, self.audit_key), tpos + 1

    def link(self, tenant_id: str, position: int, data: bytes) -> tuple[bytes, int]:
        """Link the tenant's next event into its chain; return its hash and tenant
        position (it becomes the tenant's head)."""
        head = self.heads.get(tenant_id)
        if head is None:
            digest, tpos = self.next_link(tenant_id, position, data)
        else:  # the common case, once per event: `next_link` and `move` inlined
            digest, tpos = chain_hash(head[1], position, data, self.audit_key), head[2] + 1
        self.heads[tenant_id] = (position, digest, tpos)
        self.moved.add(tenant_id)
        return digest, tpos

    def move(self, tenant_id: str, position: int, digest: bytes, tpos: int) -> None:
        """Make (position, digest, tpos) the tenant's head."""
        self.heads[tenant_id] = (position, digest, tpos)
        self.moved.add(tenant_id)


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
