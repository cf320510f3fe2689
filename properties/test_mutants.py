"""The property suite must catch each deliberately broken backend, and shrink the
failure to a short example."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from dogqueue.testing import BackendFactory, backend_state_machine
from properties.mutants import MUTANTS

#: A bounded search: enough for every mutant, small enough for CI. Hypothesis stops at the
#: first failure, so the budget only costs time for a mutant that is hard to reach: 300
#: examples were not always enough for "leased job leased again" (the modules earlier
#: tests had imported into the process changed the path the search took).
HUNT = settings(
    max_examples=1_000,
    stateful_step_count=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    report_multiple_bugs=False,
)
#: Rule calls in a printed failing example (invariant checks and teardown excluded).
#: A rule returning several bundle values prints a tuple target: `(a,) = state.rule(`.
STEP = re.compile(r"^(?:[\w, ()]+ = )?state\.(?!backend_matches_model|teardown)\w+\(", re.M)
SHORT = 6


@pytest.mark.parametrize("factory", list(MUTANTS.values()), ids=list(MUTANTS))
def test_the_suite_catches_the_broken_backend(factory: BackendFactory) -> None:
    machine = backend_state_machine(factory, "Mutant")
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(machine, settings=HUNT)
    example = "\n".join(getattr(caught.value, "__notes__", []))
    steps = STEP.findall(example)
    assert steps, f"no failing example was printed:\n{example}"
    assert len(steps) <= SHORT, f"the failing example did not shrink:\n{example}"
