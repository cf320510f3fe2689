"""pytest fixtures for testing your own jobs. Installing dogqueue registers this plugin
(a pytest11 entry point); disable it with `pytest -p no:dogqueue.testing.pytest_plugin`.

The backend and adapter fixtures are async (pytest-asyncio, in `dogqueue[testing]`):
use them from `async def` tests. Override `dogqueue_jobs` (your JobRegistry or a list
of jobs) and `dogqueue_context` (what your jobs get as `ctx`) in your conftest.py.

It also registers what dogqueue's shipped suites take:

- `--dogqueue-backend=MODULE:FACTORY`: the backend factory the property suite and the
  conformance suite (`python -m pytest --pyargs dogqueue.testing.conformance`) check,
  instead of the built-in backends;
- the `postgres`, `redis` and `chromium` markers: a test so marked skips, with how to
  get the server or browser, where it is missing, and fails instead when $CI is `true`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from dogqueue.backend.contract import Backend
from dogqueue.backend.kit.strictview import CHECK_READS_ENV
from dogqueue.backend.memory import MemoryBackend
from dogqueue.client.adapter import AnyJob, QueueAdapter
from dogqueue.clock import FakeClock
from dogqueue.jobs import JobRegistry
from dogqueue.testing.immediate import ImmediateAdapter

try:
    import pytest_asyncio
except ImportError:  # the async fixtures say what is missing when a test asks for one
    pytest_asyncio = None  # type: ignore[assignment]

NEEDS_PYTEST_ASYNCIO = (
    "dogqueue's async fixtures need pytest-asyncio: pip install 'dogqueue[testing]'"
)

#: The browser the dashboard's browser tests drive.
CHROMIUM = "/usr/bin/chromium"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--dogqueue-backend",
        default=None,
        metavar="MODULE:FACTORY",
        help="run dogqueue's property and conformance suites against the backends "
        "factory(*, clock, config) returns (default: the built-in backends)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Every test checks that each unit of work reads only what it declared, on every
    # backend (processes the tests start inherit it).
    os.environ.setdefault(CHECK_READS_ENV, "1")
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL server")
    config.addinivalue_line("markers", "redis: needs a Redis server")
    config.addinivalue_line("markers", "chromium: needs Chromium (and playwright)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, missing in (
        ("postgres", postgres_missing),
        ("redis", redis_missing),
        ("chromium", chromium_missing),
    ):
        if item.get_closest_marker(marker) is None:
            continue
        reason = missing()
        if reason is None:
            continue
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


@functools.cache
def postgres_missing() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None if they can."""
    if importlib.util.find_spec("asyncpg") is None:
        return "asyncpg is not installed: pip install 'dogqueue[postgres]'"
    from dogqueue.backend.postgres.backend import default_dsn

    parts = urlsplit(default_dsn())
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return (
            f"no PostgreSQL at {host}:{port}: start one (apt install postgresql) "
            "or set DOGQUEUE_PG_DSN"
        )
    return None


@functools.cache
def redis_missing() -> str | None:
    """Why the Redis tests cannot run here, or None if they can."""
    if importlib.util.find_spec("redis") is None:
        return "redis-py is not installed: pip install 'dogqueue[redis]'"
    from dogqueue.backend.redis.backend import default_url

    parts = urlsplit(default_url())
    if parts.scheme == "unix":
        return None if os.path.exists(parts.path) else f"no Redis socket at {parts.path}"
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return (
            f"no Redis at {host}:{port}: start one (apt install redis-server) "
            "or set DOGQUEUE_REDIS_URL"
        )
    return None


@functools.cache
def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    if shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM}: apt install chromium"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install playwright"
    return None


#: The markers of the built-in backends that need a server.
_SERVER_MARKS = {"postgres": [pytest.mark.postgres], "redis": [pytest.mark.redis]}


def backend_factory_params(config: pytest.Config, *, builtin_only: bool = False) -> list[Any]:
    """The backends a suite runs on, as parameters of a `backend_factory` fixture that
    resolves them: the factory `--dogqueue-backend` names, else the built-in ones (the
    PostgreSQL one marked `postgres`, the Redis one `redis`)."""
    spec = None if builtin_only else config.getoption("--dogqueue-backend", None)
    if spec:
        return [pytest.param(spec, id=spec)]
    from dogqueue.testing.factories import BUILTIN_NAMES

    return [
        pytest.param(name, id=name, marks=_SERVER_MARKS.get(name, [])) for name in BUILTIN_NAMES
    ]


def _async_fixture(function: Callable[..., Any]) -> Any:
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(function)

    @pytest.fixture(name=function.__name__)
    def missing() -> None:
        pytest.fail(NEEDS_PYTEST_ASYNCIO, pytrace=False)

    missing.__doc__ = function.__doc__
    return missing


@pytest.fixture
def dogqueue_clock() -> FakeClock:
    """A clock that moves only when the test (or `run_until_idle`) moves it."""
    return FakeClock()


@pytest.fixture
def dogqueue_jobs() -> JobRegistry[Any] | list[AnyJob]:
    """The jobs the adapters know: override it to return your application's
    JobRegistry (or a list of job classes and function jobs). None by default."""
    return []


@pytest.fixture
def dogqueue_context() -> Any:
    """The context your jobs get as `ctx` in immediate mode: override it. None by default."""
    return None


@_async_fixture
async def dogqueue_backend(dogqueue_clock: FakeClock) -> AsyncIterator[Backend]:
    """An open memory backend on `dogqueue_clock`, closed after the test. Override it
    with `dogqueue_postgres_backend` to run the same tests on PostgreSQL."""
    async with MemoryBackend(clock=dogqueue_clock) as backend:
        yield backend


@_async_fixture
async def dogqueue_postgres_backend(dogqueue_clock: FakeClock) -> AsyncIterator[Backend]:
    """An open PostgreSQL backend on `dogqueue_clock`, in a schema of its own that is
    dropped after the test, on the server at $DOGQUEUE_PG_DSN (default: the local one,
    user postgres). Needs asyncpg (`dogqueue[postgres]`)."""
    reason = postgres_missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    from dogqueue.backend.postgres import PostgresBackend
    from dogqueue.backend.postgres.backend import default_dsn
    from dogqueue.testing.postgres import drop_schema

    dsn, schema = default_dsn(), f"dogqueue_test_{uuid.uuid4().hex[:12]}"
    try:
        async with PostgresBackend(dsn, schema=schema, clock=dogqueue_clock) as backend:
            yield backend
    finally:
        await drop_schema(dsn, schema)


@pytest.fixture
def dogqueue_adapter(
    dogqueue_backend: Backend, dogqueue_jobs: JobRegistry[Any] | list[AnyJob]
) -> QueueAdapter[Any]:
    """An adapter on `dogqueue_backend` that knows `dogqueue_jobs`; run what it enqueued
    with `run_until_idle`."""
    return QueueAdapter(dogqueue_backend, jobs=dogqueue_jobs)


@pytest.fixture
def dogqueue_immediate(
    dogqueue_backend: Backend,
    dogqueue_jobs: JobRegistry[Any] | list[AnyJob],
    dogqueue_context: Any,
) -> ImmediateAdapter[Any]:
    """An adapter in immediate mode on `dogqueue_backend`: each enqueue returns after
    the job (and its retries, on the fake clock) has run with `dogqueue_context`."""
    return ImmediateAdapter(dogqueue_backend, jobs=dogqueue_jobs, context=dogqueue_context)
