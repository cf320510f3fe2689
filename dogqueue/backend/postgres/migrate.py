"""Creating and upgrading a queue's schema: numbered migrations, run under an advisory
lock so that any number of processes may open the queue at once."""

from __future__ import annotations

import hashlib

import asyncpg

from dogqueue.backend.postgres.queries import MIGRATIONS, SCHEMA_VERSION, Q
from dogqueue.core.errors import InvalidInput, StorageError

#: PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1): longer ones are cut.
MAX_IDENTIFIER_BYTES = 63


def quote(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def check_schema(schema: str) -> str:
    """`schema` if PostgreSQL keeps it as given (quoted: any case, space, quote or
    non-ASCII letter); InvalidInput("schema") for a name it would cut or refuse."""
    if len(schema.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise InvalidInput(
            "schema",
            f"must be at most {MAX_IDENTIFIER_BYTES} bytes in UTF-8 (PostgreSQL cuts longer names)",
        )
    if "\x00" in schema:
        raise InvalidInput("schema", "must not contain a NUL character")
    if schema.startswith("pg_") or schema == "information_schema":
        raise InvalidInput("schema", "must not be a PostgreSQL system schema name")
    return schema


def channel(kind: str, schema: str) -> str:
    """The NOTIFY channel of `kind` for `schema`: a digest of the name, so that two
    schemas never share one and no channel is longer than an identifier."""
    digest = hashlib.sha256(schema.encode("utf-8")).hexdigest()[:32]
    return f"dq_{kind}_{digest}"


async def migrate(dsn: str, schema: str) -> int:
    """Bring `schema` to SCHEMA_VERSION in one transaction; return the version found.
    A schema already there is only read: no DDL, no lock (a DML-only role may open
    it). Driver errors are raised as StorageError."""
    try:
        return await _migrate(dsn, schema)
    except asyncpg.InsufficientPrivilegeError as error:
        raise StorageError(
            f"queue schema {schema!r} needs migrating to version {SCHEMA_VERSION}, which"
            f" this role may not do: run `dogqueue migrate` as its owner ({error})"
        ) from error
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
    ) as error:
        raise StorageError(f"cannot migrate PostgreSQL queue {schema!r}: {error}") from error


async def _migrate(dsn: str, schema: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        found = await schema_version(conn, schema)
        if found == SCHEMA_VERSION:
            return found
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
