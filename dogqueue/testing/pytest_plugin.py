"""pytest fixtures for testing your own jobs: a fake clock, a memory backend on it and
an adapter. Installing dogqueue registers it (a pytest11 entry point); disable it with
`pytest -p no:dogqueue.testing.pytest_plugin`.

It also registers what dogqueue's shipped suites take:

- `--dogqueue-backend=MODULE:FACTORY`: the backend factory the property suite and the
  conformance suite (`python -m pytest --pyargs dogqueue.testing.conformance`) check,
  instead of the built-in backends;
- the `postgres` and `chromium` markers: a test so marked skips, with how to get the
  server or browser, where it is missing, and fails instead when $CI is `true`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from dogqueue.backend.memory import MemoryBackend
from dogqueue.client.adapter import QueueAdapter
from dogqueue.clock import FakeClock

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
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL server")
    config.addinivalue_line("markers", "chromium: needs Chromium (and playwright)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, missing in (("postgres", postgres_missing), ("chromium", chromium_missing)):
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
def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    if shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM}: apt install chromium"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install playwright"
    return None


def backend_factory_params(config: pytest.Config, *, builtin_only: bool = False) -> list[Any]:
    """The backends a suite runs on, as parameters of a `backend_factory` fixture that
    resolves them: the factory `--dogqueue-backend` names, else the built-in ones (the
    PostgreSQL one marked `postgres`)."""
    spec = None if builtin_only else config.getoption("--dogqueue-backend", None)
    if spec:
        return [pytest.param(spec, id=spec)]
    from dogqueue.testing.factories import BUILTIN_NAMES

    return [
        pytest.param(name, id=name, marks=[pytest.mark.postgres] if name == "postgres" else [])
        for name in BUILTIN_NAMES
    ]


@pytest.fixture
def dogqueue_clock() -> FakeClock:
    """A clock that moves only when the test (or `run_until_idle`) moves it."""
    return FakeClock()


@pytest.fixture
def dogqueue_backend(dogqueue_clock: FakeClock) -> MemoryBackend:
    """A memory backend on `dogqueue_clock` (it opens on first use)."""
    return MemoryBackend(clock=dogqueue_clock)


@pytest.fixture
def dogqueue_adapter(dogqueue_backend: MemoryBackend) -> QueueAdapter[Any]:
    """An adapter on `dogqueue_backend`; register your job classes with it."""
    return QueueAdapter(dogqueue_backend)
