"""pytest fixtures for testing your own jobs: a fake clock, a memory backend on it and
an adapter. Installing dogqueue registers it (a pytest11 entry point); disable it with
`pytest -p no:dogqueue.testing.pytest_plugin`."""

from __future__ import annotations

from typing import Any

import pytest

from dogqueue.backend.memory import MemoryBackend
from dogqueue.client.adapter import QueueAdapter
from dogqueue.clock import FakeClock


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
