"""The CI profile catches every generated broken backend (properties/broken.py), and the
suite provokes every error the contract lists, so no swallowed error can hide."""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from dogqueue.core.errors import QueueError
from dogqueue.testing import BackendFactory, backend_state_machine
from properties.broken import RAISES, WrappingFactory, mutant_classes, recording

MUTANTS = mutant_classes()


def ci_budget() -> settings:
    """The loaded profile ("ci" unless $HYPOTHESIS_PROFILE says otherwise), without
    shrinking: catching is what counts here; test_mutants.py checks shrinking."""
    return settings(settings(), phases=[Phase.explicit, Phase.generate])


def test_a_correct_backend_passes_and_raises_every_listed_error(
    mutant_base: BackendFactory,
) -> None:
    raised: set[tuple[str, type[QueueError]]] = set()
    factory = WrappingFactory(mutant_base, recording(raised))
    run_state_machine_as_test(backend_state_machine(factory, "Recorded"), settings=ci_budget())
    listed = {(method, error) for method, errors in RAISES.items() for error in errors}
    assert raised - listed == set(), "errors raised that RAISES does not list"
    assert listed - raised == set(), "listed errors the suite never provoked"


@pytest.mark.parametrize("name", list(MUTANTS))
def test_the_ci_profile_catches_the_broken_backend(mutant_base: BackendFactory, name: str) -> None:
    factory = WrappingFactory(mutant_base, MUTANTS[name])
    with pytest.raises(AssertionError):
        run_state_machine_as_test(backend_state_machine(factory, name), settings=ci_budget())
