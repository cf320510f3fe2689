"""Key names. Every key of a tenant starts with the tenant's hash tag `{prefix:tenant}`,
so a Redis Cluster keeps all of a tenant's keys, and so every unit of work, on one
shard; the log's global keys (positions, chain heads, the tenant registry) share the tag
`{prefix}`."""

from __future__ import annotations

from dogqueue.core.errors import InvalidInput

#: Characters of a tenant id escaped in key names: braces would cut the hash tag short.
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def check_prefix(prefix: object) -> str:
    """`prefix` if it can start key names (no braces, colons or spaces)."""
    if not isinstance(prefix, str) or not prefix:
        raise InvalidInput("prefix", "must be a non-empty str")
    if any(c in prefix for c in "{}: \t\r\n") or len(prefix) > 64:
        raise InvalidInput(
            "prefix", "must be at most 64 characters, without braces, colons or spaces"
        )
    return prefix


def tenant_part(tenant_id: str) -> str:
    """The tenant id as it appears inside key names."""
    return tenant_id.translate(_ESCAPES)


class Keys:
    """The key names of one queue (one prefix)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        #: The global keys' tag.
        self.glob = "{" + prefix + "}"
        self.pos = self.glob + ":pos"
        self.log = self.glob + ":log"
        self.heads = self.glob + ":heads"
        self.tenants = self.glob + ":tenants"
        #: What archival left: moved position ranges, anchors, cuts, and its lock.
        self.archived = self.glob + ":archived"
        self.anchors = self.glob + ":anchors"
        self.cuts = self.glob + ":cuts"
        self.archiving = self.glob + ":archiving"
        self.ready_channel = prefix + ":ready"
        self.cancel_channel = prefix + ":cancel"

    def tag(self, tenant_id: str) -> str:
        """The tenant's hash tag, which starts every key of the tenant."""
        return "{" + self.prefix + ":" + tenant_part(tenant_id) + "}"

    def tenant_log(self, tenant_id: str) -> str:
        """The tenant's event stream (entry id `tpos-0`)."""
        return self.tag(tenant_id) + ":log"

    def runs(self, tenant_id: str) -> str:
        """The sorted set mapping the tenant's positions to log positions, run by run."""
        return self.glob + ":runs:" + tenant_part(tenant_id)

    def of(self, tenant_id: str, name: str) -> str:
        """The tenant's key `name` (jobs, v, e, h, k, cron, l, n, fifo, ...)."""
        return self.tag(tenant_id) + ":" + name
