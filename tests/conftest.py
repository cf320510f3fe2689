"""Fixtures shared by every test tier: a fake clock and a backend of each built-in kind
(the conformance suite's fixtures, on the built-in factories whatever
`--dogqueue-backend` says). A test on the PostgreSQL backend, or asking for a schema,
is marked `postgres` (one asking for a Redis prefix `redis`), so it skips where no server
runs (and fails under CI=true)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from dogqueue.testing.conformance.fixtures import (
    MakeBackend,
    backend,
    backend_factory,
    clock,
    make_backend,
)
from dogqueue.testing.pytest_plugin import backend_factory_params

__all__ = ["MakeBackend", "backend", "backend_factory", "clock", "make_backend"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_factory" in metafunc.fixturenames:
        params = backend_factory_params(metafunc.config, builtin_only=True)
        metafunc.parametrize("backend_factory", params, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "pg_schema" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if "redis_prefix" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)


@pytest.fixture
def backend_kind(request: pytest.FixtureRequest) -> str:
    """The name of the built-in backend under test (memory, sqlite, postgres or redis)."""
    kind: str = request.node.callspec.params["backend_factory"]
    return kind


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped after the test."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    yield schema
    drop_schema(schema)


def drop_schema(schema: str) -> None:
    """Drop a test schema, and those named after it, with everything in them."""
    import asyncpg  # only the PostgreSQL tier needs the driver

    from dogqueue.backend.postgres.backend import default_dsn

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


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the Redis test server, its keys deleted after the test."""
    from dogqueue.backend.redis.backend import default_url
    from dogqueue.testing.redis import drop_prefix

    prefix = f"test{uuid.uuid4().hex[:16]}"
    yield prefix
    asyncio.run(drop_prefix(default_url(), prefix))
