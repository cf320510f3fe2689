"""Tools to verify a backend against dogqueue's promises, and to test code that uses one.

    from hypothesis.stateful import run_state_machine_as_test
    from dogqueue.testing import backend_state_machine, load_profile

    load_profile()  # "ci", or $HYPOTHESIS_PROFILE
    run_state_machine_as_test(backend_state_machine(my_factory))

`my_factory(*, clock, config)` returns a new, unopened backend; see
`dogqueue.testing.factories` for the optional hooks that check persistence and crashes.
"""

from dogqueue.clock import FakeClock
from dogqueue.testing.factories import (
    BackendFactory,
    MemoryFactory,
    SqliteFactory,
    default_factories,
    load_factory,
)
from dogqueue.testing.model import QueueModel
from dogqueue.testing.profiles import load_profile, register_profiles
from dogqueue.testing.stateful import BackendStateMachine, backend_state_machine

__all__ = [
    "BackendFactory",
    "BackendStateMachine",
    "FakeClock",
    "MemoryFactory",
    "QueueModel",
    "SqliteFactory",
    "backend_state_machine",
    "default_factories",
    "load_factory",
    "load_profile",
    "register_profiles",
]
