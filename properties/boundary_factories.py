"""Each generated boundary mutant as a backend factory named `properties.boundary_factories:NAME`
(the MODULE:FACTORY form the shipped suites take), wrapping the memory backend: for mutants of
methods the state machine never calls, which the shipped conformance suite must catch."""

from __future__ import annotations

from dogqueue.testing import BackendFactory, MemoryFactory
from properties.boundary import boundary_mutants
from properties.broken import WrappingFactory


def __getattr__(name: str) -> BackendFactory:
    mutants = boundary_mutants()
    if name not in mutants:
        raise AttributeError(name)
    return WrappingFactory(MemoryFactory(), mutants[name])
