"""What the server promises about acknowledged writes, read at open."""

from __future__ import annotations

import logging
from typing import Any

from dogqueue.core.errors import InvalidInput, StorageError

logger = logging.getLogger("dogqueue.redis")

#: Accepted values of `RedisBackend(durability=...)`.
DURABILITY = ("persistent", "always", "none")


def check_durability(value: object) -> str:
    """`value` if it is one of DURABILITY."""
    if value not in DURABILITY:
        raise InvalidInput("durability", f"must be one of {', '.join(DURABILITY)}")
    return str(value)


def describe(settings: dict[str, str]) -> str:
    """The persistence settings as one line."""
    return ", ".join(
        f"{name}={settings.get(name, '?')!r}" for name in ("appendonly", "appendfsync", "save")
    )


async def server_persistence(client: Any) -> dict[str, str]:
    """appendonly, appendfsync and save as the server reports them ({} if CONFIG GET is
    not allowed, as on some managed services)."""
    settings: dict[str, str] = {}
    for name in ("appendonly", "appendfsync", "save"):
        try:
            reply = await client.config_get(name)
        except Exception:  # a managed server may refuse CONFIG
            return {}
        # A cluster client answers per node, merged; a plain one with {name: value}.
        value = reply.get(name, reply.get(name.encode(), ""))
        settings[name] = value.decode() if isinstance(value, bytes) else str(value)
    return settings


def check_server(settings: dict[str, str], durability: str, where: str) -> None:
    """Refuse a server that does not keep what `durability` asks for; log what it keeps.

    "persistent": the append-only file or RDB snapshots must be on (with `appendfsync
    everysec` up to about a second of acknowledged writes can be lost on a power loss or
    kill -9 of the server; with snapshots only, everything since the last one);
    "always": the append-only file with `appendfsync always` (nothing acknowledged is
    lost); "none": anything, even a server that keeps nothing."""
    aof = settings.get("appendonly") == "yes"
    fsync = settings.get("appendfsync", "")
    rdb = bool(settings.get("save", "").strip())
    known = describe(settings) if settings else "persistence unknown (CONFIG GET refused)"
    line = f"Redis {where}: {known}"
    if durability == "none":
        logger.warning("%s; durability='none': acknowledged writes may be lost", line)
        return
    if not settings:
        raise StorageError(f"{line}; pass durability='none' to run without knowing it")
    if durability == "always" and not (aof and fsync == "always"):
        raise StorageError(
            f"{line}: durability='always' needs appendonly yes and appendfsync always"
        )
    if not (aof or rdb):
        raise StorageError(
            f"{line}: the server keeps nothing on disk; turn on appendonly, or pass"
            " durability='none' to accept losing the queue on a restart"
        )
    logger.info("%s (aof=%s, fsync=%s, snapshots=%s)", line, aof, fsync or "-", rdb)
