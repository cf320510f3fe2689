"""Every backend against the reference model (dogqueue.testing), with the profile's budget."""

from __future__ import annotations

from hypothesis.stateful import run_state_machine_as_test

from dogqueue.testing import BackendFactory, backend_state_machine


def test_backend_matches_the_model(backend_factory: BackendFactory) -> None:
    run_state_machine_as_test(backend_state_machine(backend_factory))
