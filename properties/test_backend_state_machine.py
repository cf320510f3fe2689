"""Every backend against the reference model (dogqueue.testing), with the profile's budget."""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from dogqueue.testing import BackendFactory, backend_state_machine

#: Factories whose every call is a server round trip run a quarter of the profile's
#: examples (at least 10): the state machine reads the whole log after every step, and
#: the PostgreSQL run would otherwise take most of the CI profile's time.
ROUND_TRIP_FACTORIES = ("PostgresFactory",)


def budget(factory: BackendFactory) -> settings:
    """The loaded profile, scaled for `factory`."""
    profile = settings()
    if type(factory).__name__ not in ROUND_TRIP_FACTORIES:
        return profile
    return settings(profile, max_examples=max(10, profile.max_examples // 4))


def test_backend_matches_the_model(backend_factory: BackendFactory) -> None:
    run_state_machine_as_test(
        backend_state_machine(backend_factory), settings=budget(backend_factory)
    )
