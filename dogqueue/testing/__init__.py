"""Tools to verify a backend against dogqueue's promises, and to test code that uses one.

    from hypothesis.stateful import run_state_machine_as_test
    from dogqueue.testing import backend_state_machine, load_profile

    load_profile()  # "ci", or $HYPOTHESIS_PROFILE
    run_state_machine_as_test(backend_state_machine(my_factory))

`my_factory(*, clock, config)` returns a new, unopened backend; see
`dogqueue.testing.factories` for the optional hooks that check persistence and crashes.
The same factory runs the conformance suite (`dogqueue.testing.conformance`):
`python -m pytest --pyargs dogqueue.testing.conformance --dogqueue-backend=MODULE:FACTORY`.

For your own jobs' tests, `run_until_idle`, `ImmediateAdapter` and the pytest fixtures
(`dogqueue_adapter`, `dogqueue_immediate`, ...; registered automatically when dogqueue is
installed) need only pytest and pytest-asyncio; the property-suite names import
hypothesis when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dogqueue.clock import FakeClock
    from dogqueue.testing.factories import (
        BackendFactory,
        MemoryFactory,
        SqliteFactory,
        default_factories,
        load_factory,
    )
    from dogqueue.testing.immediate import ImmediateAdapter
    from dogqueue.testing.model import QueueModel
    from dogqueue.testing.profiles import load_profile, register_profiles
    from dogqueue.testing.runner import IdleReport, run_until_idle
    from dogqueue.testing.stateful import BackendStateMachine, backend_state_machine

#: Where each public name lives; imported on first use so that a user's tests that only
#: run jobs do not need hypothesis.
_HOMES = {
    "FakeClock": "dogqueue.clock",
    "BackendFactory": "dogqueue.testing.factories",
    "MemoryFactory": "dogqueue.testing.factories",
    "SqliteFactory": "dogqueue.testing.factories",
    "default_factories": "dogqueue.testing.factories",
    "load_factory": "dogqueue.testing.factories",
    "ImmediateAdapter": "dogqueue.testing.immediate",
    "QueueModel": "dogqueue.testing.model",
    "load_profile": "dogqueue.testing.profiles",
    "register_profiles": "dogqueue.testing.profiles",
    "IdleReport": "dogqueue.testing.runner",
    "run_until_idle": "dogqueue.testing.runner",
    "BackendStateMachine": "dogqueue.testing.stateful",
    "backend_state_machine": "dogqueue.testing.stateful",
}

__all__ = [
    "BackendFactory",
    "BackendStateMachine",
    "FakeClock",
    "IdleReport",
    "ImmediateAdapter",
    "MemoryFactory",
    "QueueModel",
    "SqliteFactory",
    "backend_state_machine",
    "default_factories",
    "load_factory",
    "load_profile",
    "register_profiles",
    "run_until_idle",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dogqueue.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
