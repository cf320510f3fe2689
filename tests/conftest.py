"""Fixtures shared by every test tier: a fake clock and a backend of each kind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from dogqueue import FakeClock, QueueConfig
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.postgres import PostgresBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.sqlite import SqliteBackend

BackendFactory = Callable[..., EngineBackend]
BACKEND_KINDS = ["memory", "sqlite", "postgres"]


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when a test advances it."""
    return FakeClock()


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped after the test."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    yield schema
    drop_schema(schema)


def drop_schema(schema: str) -> None:
    """Drop a test schema, and those named after it, with everything in them."""

    async def drop() -> None:
        conn = await asyncpg.connect(default_dsn())
        try:
            names = await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2",
                schema,
                schema + "\\_%",
            )
            for (name,) in names:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower())


@pytest.fixture
def make_backend(
    backend_kind: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> BackendFactory:
    """Makes unopened backends of the parametrized kind; SQLite ones share one file in
    a temporary directory unless given another path, PostgreSQL ones one fresh schema."""
    schema = request.getfixturevalue("pg_schema") if backend_kind == "postgres" else ""

    def make(
        *, config: QueueConfig | None = None, path: Path | None = None, **kwargs: object
    ) -> EngineBackend:
        kwargs.setdefault("clock", clock)
        if backend_kind == "memory":
            return MemoryBackend(config=config, **kwargs)  # type: ignore[arg-type]
        if backend_kind == "postgres":
            # Another path is another store: here, another schema with the same prefix.
            name = schema if path is None else f"{schema}_{_identifier(path.name)}"
            return PostgresBackend(default_dsn(), schema=name, config=config, **kwargs)  # type: ignore[arg-type]
        return SqliteBackend(path or tmp_path / "queue.db", config=config, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def backend(make_backend: BackendFactory) -> AsyncIterator[EngineBackend]:
    """An open backend of each kind on the fake clock."""
    async with make_backend() as opened:
        yield opened
