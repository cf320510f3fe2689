"""Rows passed one parameter per column (packing.py) come out of the statements' SQL
exactly as they went in: names with any printable character, bytes with any byte, one
row, no row, None; a name that would split into other rows is refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from dogqueue import StorageError
from dogqueue.backend.kit.rows import columns
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.migrate import quote
from dogqueue.backend.postgres.packing import pack_ints, pack_names, packed
from dogqueue.backend.postgres.queries import Q

pytestmark = pytest.mark.postgres

HOSTILE_BYTES = bytes(range(256))
LOG_ROWS: list[tuple[Any, ...]] = [
    (1, 10, "acme", 1, HOSTILE_BYTES),
    (2, 11, "tenant, with \"quotes\" and 'commas'", 1, b""),
    (3, 12, "日本語 ☃ \\x1f", 2, b",\x1f\x1e,n"),
    (4, 13, "n", 3, b"\x00"),
]


@pytest.fixture
async def schema_conn() -> AsyncIterator[asyncpg.Connection]:
    """A connection whose search_path is a freshly migrated queue schema."""
    schema = f"packing_{uuid.uuid4().hex[:10]}"
    async with PostgresBackend(default_dsn(), schema=schema):
        pass
    conn = await asyncpg.connect(default_dsn(), server_settings={"search_path": quote(schema)})
    try:
        yield conn
    finally:
        await conn.execute(f"DROP SCHEMA {quote(schema)} CASCADE")
        await conn.close()


@pytest.mark.parametrize("rows", [LOG_ROWS, LOG_ROWS[1:2], []], ids=["many", "one", "none"])
async def test_packed_log_rows_are_stored_as_given(
    schema_conn: asyncpg.Connection, rows: list[tuple[Any, ...]]
) -> None:
    async with schema_conn.transaction():
        await schema_conn.execute(Q["insert_log"], *packed(columns(rows, 5), "iinib"))
        stored = await schema_conn.fetch(
            "SELECT pos, seq, tenant_id, tpos, hash FROM log ORDER BY pos"
        )
    assert [tuple(row) for row in stored] == rows


async def test_packed_nulls_come_back_as_nulls(schema_conn: asyncpg.Connection) -> None:
    ints = pack_ints([None, 7, None])
    names = pack_names([None, "n", None])
    row = await schema_conn.fetchrow(
        "SELECT string_to_array($1::text, ',', 'n')::bigint[],"
        " string_to_array($2::text, E'\\x1f', E'\\x1e')",
        ints,
        names,
    )
    assert list(row[0]) == [None, 7, None]
    assert list(row[1]) == [None, "n", None]


@pytest.mark.parametrize("name", ["a\x1fb", "\x1e", "", "x\x1e"])
def test_a_name_that_would_split_or_vanish_is_refused(name: str) -> None:
    with pytest.raises(StorageError):
        pack_names(["ok", name])
