"""Property-suite options: `--dogqueue-backend=package.module:factory` picks the backend
under test (default: the memory and SQLite backends); $HYPOTHESIS_PROFILE picks "ci"
(default) or "deep"."""

from __future__ import annotations

import pytest

from dogqueue.testing import (
    BackendFactory,
    MemoryFactory,
    default_factories,
    load_factory,
    load_profile,
)

load_profile()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--dogqueue-backend",
        default=None,
        metavar="MODULE:FACTORY",
        help="run the property suite against the backend factory(*, clock, config) returns",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_factory" not in metafunc.fixturenames:
        return
    spec = metafunc.config.getoption("--dogqueue-backend")
    factories = {spec: load_factory(spec)} if spec else default_factories()
    metafunc.parametrize("backend_factory", list(factories.values()), ids=list(factories))


@pytest.fixture
def mutant_base(request: pytest.FixtureRequest) -> BackendFactory:
    """The correct backend the generated broken backends wrap: the one named by
    --dogqueue-backend, else the memory backend (the fastest)."""
    spec = request.config.getoption("--dogqueue-backend")
    return load_factory(spec) if spec else MemoryFactory()
