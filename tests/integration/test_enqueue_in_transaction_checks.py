"""Transactional enqueue (SQLite's `enqueue_messages_in`, PostgreSQL's
`enqueue_in_transaction`) refuses the conformance suite's table of bad messages with
the same InvalidInput as every other enqueue path, and appends nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from dogqueue import InvalidInput, JobMessage, QueueConfig, QueueCtx
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.external import enqueue_messages_in
from dogqueue.testing.conformance.helpers import log_size, message
from dogqueue.testing.conformance.test_enqueue_paths import (
    BAD_MESSAGES,
    PAYLOAD_LIMIT,
    bad_message,
)

ACME = QueueCtx("acme")
CONFIG = QueueConfig(max_payload_bytes=PAYLOAD_LIMIT)
ROWS = [*BAD_MESSAGES, ("empty tenant", {}, "tenant_id")]


def _ctx(field: str) -> QueueCtx:
    return QueueCtx("") if field == "tenant_id" else ACME


async def test_sqlite_transactional_enqueue_refuses_each_bad_message(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "queue.db", config=CONFIG) as backend:
        await backend.enqueue(ACME, message("already-there"))
        before = await log_size(backend)
        conn = sqlite3.connect(backend.path)
        try:
            for what, changes, field in ROWS:
                bad: JobMessage = bad_message(changes)
                with pytest.raises(InvalidInput) as raised:
                    enqueue_messages_in(
                        conn,
                        _ctx(field),
                        [message("good"), bad],
                        engine=backend.engine,
                        config=backend.config,
                        now=backend.now(),
                        audit_key=backend.audit_key,
                        path=backend.path,
                    )
                assert raised.value.field == field, f"{what}: {raised.value!r}"
            conn.commit()
        finally:
            conn.close()
        assert await log_size(backend) == before


@pytest.mark.postgres
async def test_postgres_transactional_enqueue_refuses_each_bad_message(pg_schema: str) -> None:
    async with PostgresBackend(default_dsn(), schema=pg_schema, config=CONFIG) as backend:
        await backend.enqueue(ACME, message("already-there"))
        before = await log_size(backend)
        conn = await asyncpg.connect(default_dsn())
        try:
            for what, changes, field in ROWS:
                with pytest.raises(InvalidInput) as raised:
                    async with conn.transaction():
                        await backend.enqueue_in_transaction(
                            conn, _ctx(field), bad_message(changes)
                        )
                assert raised.value.field == field, f"{what}: {raised.value!r}"
        finally:
            await conn.close()
        assert await log_size(backend) == before
