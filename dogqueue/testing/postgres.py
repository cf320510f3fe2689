"""The property suite's PostgreSQL factory: a fresh schema per run, with the reopen and
crash hooks (the crash kills the writing connection with `pg_terminate_backend`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from dogqueue.backend.contract import Backend
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.migrate import quote
from dogqueue.backend.postgres.queries import Q
from dogqueue.clock import Clock
from dogqueue.core.config import QueueConfig
from dogqueue.testing.factories import BuiltinFactory, doomed_unit


class PostgresFactory(BuiltinFactory):
    """PostgreSQL backends on the server at $DOGQUEUE_PG_DSN (default: the local one),
    each in a schema of its own."""

    def __init__(self, dsn: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.dsn = dsn or default_dsn()

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        return self._open_in(f"props_{uuid.uuid4().hex[:16]}", clock, config)

    def _open_in(self, schema: str, clock: Clock, config: QueueConfig) -> PostgresBackend:
        return PostgresBackend(
            self.dsn,
            schema=schema,
            clock=clock,
            config=config,
            **self._backend_options(),
        )

    def reopen(self, backend: Backend) -> Backend:
        """A new backend on the same schema as `backend`."""
        assert isinstance(backend, PostgresBackend)
        return self._open_in(backend.schema, backend.clock, backend.config)

    async def crash_mid_transaction(self, backend: Backend) -> None:
        """Run real units of work (enqueue a job, cancel every leased job) and flush them
        inside a transaction, then kill that connection from another one before COMMIT."""
        assert isinstance(backend, PostgresBackend)
        await backend.open()
        conn = await asyncpg.connect(
            self.dsn, server_settings={"search_path": quote(backend.schema)}
        )
        try:
            pid = conn.get_server_pid()
            transaction = conn.transaction()
            await transaction.start()
            await backend.run_unit_in(conn, doomed_unit(backend.engine, crash=False))
            killer = await asyncpg.connect(self.dsn)
            try:
                await killer.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await killer.close()
            try:
                await transaction.commit()
            except Exception:  # whichever way the driver reports the lost connection
                return
            raise AssertionError("the doomed transaction committed")
        finally:
            conn.terminate()

    @asynccontextmanager
    async def hold_back_sealing(self, backend: Backend) -> AsyncIterator[None]:
        """Hold a sequencer step open (as a process frozen mid-step would), so that events
        committed inside stay in the unsealed tail until it ends."""
        assert isinstance(backend, PostgresBackend)
        blocker = await asyncpg.connect(
            self.dsn, server_settings={"search_path": quote(backend.schema)}
        )
        try:
            await blocker.execute("BEGIN")
            await blocker.fetchrow(Q["lock_log_head"])  # what a step does first
            yield
            await blocker.execute("ROLLBACK")
        finally:
            await blocker.close()

    def discard(self, backend: Backend) -> None:
        """Drop the backend's schema."""
        assert isinstance(backend, PostgresBackend)
        asyncio.run(drop_schema(self.dsn, backend.schema))

    def __repr__(self) -> str:
        return "PostgresFactory()"


async def drop_schema(dsn: str, schema: str) -> None:
    """Drop a queue's schema and everything in it."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
    finally:
        await conn.close()
