"""Creating and upgrading a queue's schema: numbered migrations, run under an advisory
lock so that any number of processes may open the queue at once."""

from __future__ import annotations

import asyncpg

from dogqueue.backend.postgres.queries import MIGRATIONS, SCHEMA_VERSION, Q
from dogqueue.core.errors import StorageError


def quote(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def migrate(dsn: str, schema: str) -> int:
    """Bring `schema` to SCHEMA_VERSION in one transaction; return the version found."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"dogqueue:{schema}")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            await conn.execute(f"SET LOCAL search_path TO {quote(schema)}")
            await conn.execute(Q["schema_version_table"])
            found = await conn.fetchval(Q["schema_version"])
            found = 0 if found is None else int(found)
            if found > SCHEMA_VERSION:
                raise StorageError(
                    f"queue schema {schema!r} is at version {found}, newer than this"
                    f" dogqueue ({SCHEMA_VERSION}); upgrade dogqueue"
                )
            for version, script in MIGRATIONS:
                if version > found:
                    await conn.execute(script)
            if found != SCHEMA_VERSION:
                await conn.execute(Q["set_schema_version"], SCHEMA_VERSION)
            return found
    finally:
        await conn.close()


async def schema_version(conn: asyncpg.Connection, schema: str) -> int | None:
    """The version of an existing queue schema, or None if there is none (reads only)."""
    if not await conn.fetchval(Q["schema_exists"], schema):
        return None
    exists = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{quote(schema)}.schema_version"
    )
    if not exists:
        return None
    value = await conn.fetchval(f"SELECT version FROM {quote(schema)}.schema_version WHERE id = 1")
    return None if value is None else int(value)
