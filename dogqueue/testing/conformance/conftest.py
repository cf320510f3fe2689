"""Runs the conformance suite on the backend factory `--dogqueue-backend` names, else on
the built-in backends; async tests run whatever the caller's pytest-asyncio mode."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from dogqueue.testing.conformance.fixtures import backend, backend_factory, clock, make_backend
from dogqueue.testing.pytest_plugin import backend_factory_params

__all__ = ["backend", "backend_factory", "clock", "make_backend"]

HERE = Path(__file__).parent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_factory" in metafunc.fixturenames:
        params = backend_factory_params(metafunc.config)
        metafunc.parametrize("backend_factory", params, indirect=True)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    # Marked before pytest-asyncio looks, so that its strict mode (the default outside
    # this project) runs them too.
    if inspect.iscoroutinefunction(obj) and collector.path.is_relative_to(HERE):
        pytest.mark.asyncio(obj)
