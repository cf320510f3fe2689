"""The backend's Lua scripts, read from the .lua files beside this module and run by
SHA (redis-py's Script objects load a script again after SCRIPT FLUSH or a restart)."""

from __future__ import annotations

from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

NAMES = ("read", "flush", "seal", "peek", "archive")


def script_text(name: str) -> str:
    """The source of the script `name`."""
    return resources.files(__package__).joinpath(f"lua/{name}.lua").read_text("utf-8")


def register(client: Redis) -> dict[str, AsyncScript]:
    """Every script, bound to `client`."""
    return {name: client.register_script(script_text(name)) for name in NAMES}
