"""Shrinking a failing run: drop faults from its plan while the same invariant still
breaks, so what is printed is short enough to read."""

from __future__ import annotations

from collections.abc import Callable

from dogqueue.testing.simulation.faults import Fault
from dogqueue.testing.simulation.run import Outcome

#: Most reruns one shrink may take.
MAX_RUNS = 60


def shrink(
    run: Callable[[list[Fault]], Outcome], failed: Outcome, max_runs: int = MAX_RUNS
) -> tuple[list[Fault], Outcome]:
    """The shortest plan found (dropping halves, then single faults, of the faults that
    fired) on which the run still breaks the invariant `failed` broke, and that run."""
    assert failed.failure is not None
    name = failed.failure.name
    plan, best = list(failed.fired), failed
    runs = 0

    def still_fails(candidate: list[Fault]) -> Outcome | None:
        nonlocal runs
        runs += 1
        outcome = run(candidate)
        if outcome.failure is not None and outcome.failure.name == name:
            return outcome
        return None

    chunk = max(1, len(plan) // 2)
    while plan and runs < max_runs:
        progress = False
        start = 0
        while start < len(plan) and runs < max_runs:
            candidate = plan[:start] + plan[start + chunk :]
            outcome = still_fails(candidate)
            if outcome is not None:
                plan, best, progress = candidate, outcome, True
            else:
                start += chunk
        if chunk == 1 and not progress:
            break
        chunk = max(1, chunk // 2)
    return plan, best
