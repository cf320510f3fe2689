"""Connecting: a plain client for `redis://`, `rediss://` and `unix://` URLs, a cluster
client when the URL says `cluster=yes` (or the caller does)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis.asyncio as redis
from redis.exceptions import RedisError

from dogqueue.core.errors import InvalidInput

#: URL schemes that name a Redis server.
SCHEMES = ("redis", "rediss", "unix")
#: What the driver raises for a failed command or a lost connection.
DRIVER_ERRORS = (RedisError, OSError)


def split_options(url: str) -> tuple[str, dict[str, str]]:
    """The URL without dogqueue's own query parameters (`prefix`, `cluster`,
    `durability`), and those parameters."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("prefix", "cluster", "durability"):
            if key in ours:
                raise InvalidInput("db", f"the URL names {key}= more than once")
            ours[key] = value
        else:
            rest.append((key, value))
    # Not urlunsplit: it drops the "//" of a unix:// URL, which has no host.
    base = url.split("?", 1)[0]
    return (base + "?" + urlencode(rest) if rest else base), ours


def connect(url: str, *, cluster: bool = False) -> Any:
    """A client for `url` (no I/O until first used)."""
    if urlsplit(url).scheme not in SCHEMES:
        raise InvalidInput("url", "must be a redis://, rediss:// or unix:// URL")
    if cluster:
        return redis.RedisCluster.from_url(url)
    return redis.Redis.from_url(url, health_check_interval=30)
