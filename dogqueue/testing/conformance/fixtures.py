"""The conformance suite's fixtures: a fake clock, the backend factory under test, a
maker of backends from it (each on storage of its own, discarded after the test), and an
open backend. The project's own tests use them too (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import pytest
import pytest_asyncio

from dogqueue.backend.contract import Backend
from dogqueue.clock import Clock, FakeClock
from dogqueue.core.config import QueueConfig
from dogqueue.testing.factories import BUILTIN_NAMES, BackendFactory, builtin_factory, load_factory


class MakeBackend(Protocol):
    """Makes a new, unopened backend on storage of its own. `clock` defaults to the
    test's; other options go to the backend's constructor (built-in factories only)."""

    def __call__(
        self, *, config: QueueConfig | None = None, clock: Clock | None = None, **options: Any
    ) -> Backend: ...


def hook(factory: BackendFactory, name: str) -> Any:
    """The factory's optional hook `name` (see dogqueue.testing.factories); skips the
    test when the factory has none."""
    found = getattr(factory, name, None)
    if found is None:
        pytest.skip(f"{factory!r} has no {name} hook (see dogqueue.testing.factories)")
    return found


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when a test advances it."""
    return FakeClock()


@pytest.fixture
def backend_factory(request: pytest.FixtureRequest) -> BackendFactory:
    """The factory under test: a built-in name or a MODULE:FACTORY spec, resolved."""
    name: str = request.param
    return builtin_factory(name) if name in BUILTIN_NAMES else load_factory(name)


@pytest.fixture
def make_backend(backend_factory: BackendFactory, clock: FakeClock) -> Iterator[MakeBackend]:
    """Makes backends from the factory under test; discards their storage afterwards."""
    made: list[tuple[BackendFactory, Backend]] = []

    test_clock = clock

    def make(
        *, config: QueueConfig | None = None, clock: Clock | None = None, **options: Any
    ) -> Backend:
        factory = backend_factory
        if options:
            factory = hook(backend_factory, "with_options")(**options)
        backend = factory(clock=clock or test_clock, config=config or QueueConfig())
        made.append((factory, backend))
        return backend

    yield make
    for factory, backend in made:
        discard = getattr(factory, "discard", None)
        if discard is not None:
            discard(backend)


@pytest_asyncio.fixture
async def backend(make_backend: MakeBackend) -> AsyncIterator[Backend]:
    """An open backend from the factory under test, on the test's clock."""
    async with make_backend() as opened:
        yield opened
