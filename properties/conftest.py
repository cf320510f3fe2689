"""Property-suite options: `--dogqueue-backend=package.module:factory` picks the backend
under test (default: the memory and SQLite backends); $HYPOTHESIS_PROFILE picks "ci"
(default) or "deep"."""

from __future__ import annotations

import pytest

from dogqueue.testing import default_factories, load_factory, load_profile

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
