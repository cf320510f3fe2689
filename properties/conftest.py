"""Property-suite options: `--dogqueue-backend=package.module:factory` (registered by
dogqueue's pytest plugin) picks the backend under test (default: the memory, SQLite and
PostgreSQL backends, the last marked `postgres`); $HYPOTHESIS_PROFILE picks "ci"
(default) or "deep"."""

from __future__ import annotations

import pytest

from dogqueue.testing import BackendFactory, MemoryFactory, load_factory, load_profile
from dogqueue.testing.conformance.fixtures import backend_factory
from dogqueue.testing.pytest_plugin import backend_factory_params

__all__ = ["backend_factory"]

load_profile()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_factory" in metafunc.fixturenames:
        params = backend_factory_params(metafunc.config)
        metafunc.parametrize("backend_factory", params, indirect=True)


@pytest.fixture
def mutant_base(request: pytest.FixtureRequest) -> BackendFactory:
    """The correct backend the generated broken backends wrap: the one named by
    --dogqueue-backend, else the memory backend (the fastest)."""
    spec = request.config.getoption("--dogqueue-backend")
    return load_factory(spec) if spec else MemoryFactory()
