"""Fixtures shared by every test tier: a fake clock and a backend of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from dogqueue import FakeClock, QueueConfig
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend

BackendFactory = Callable[..., EngineBackend]
BACKEND_KINDS = ["memory", "sqlite"]


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when a test advances it."""
    return FakeClock()


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_backend(backend_kind: str, tmp_path: Path, clock: FakeClock) -> BackendFactory:
    """Makes unopened backends of the parametrized kind; SQLite ones share one file
    in a temporary directory unless given another path."""

    def make(
        *, config: QueueConfig | None = None, path: Path | None = None, **kwargs: object
    ) -> EngineBackend:
        kwargs.setdefault("clock", clock)
        if backend_kind == "memory":
            return MemoryBackend(config=config, **kwargs)  # type: ignore[arg-type]
        return SqliteBackend(path or tmp_path / "queue.db", config=config, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def backend(make_backend: BackendFactory) -> AsyncIterator[EngineBackend]:
    """An open backend of each kind on the fake clock."""
    async with make_backend() as opened:
        yield opened
