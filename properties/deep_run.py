"""Run the stateful suite under the "deep" profile for a wall-clock budget, on the memory
and SQLite backends in turn, and print how many examples and steps were run.

    HYPOTHESIS_PROFILE=deep python -m properties.deep_run --minutes 25
"""

from __future__ import annotations

import argparse
import time

from hypothesis import settings
from hypothesis.stateful import invariant, run_state_machine_as_test

from dogqueue.testing import BackendFactory, backend_state_machine, default_factories, load_profile

BATCH = 100


def counted(factory: BackendFactory, name: str, tally: dict[str, int]) -> type:
    """The backend's state machine, counting runs and steps into `tally`."""

    class Counted(backend_state_machine(factory, name)):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            tally["examples"] += 1
            tally["invariant_checks"] -= 1  # the check before the first step

        @invariant()
        def count_step(self) -> None:
            tally["invariant_checks"] += 1

    return Counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--backend", action="append", help="memory, sqlite or postgres")
    args = parser.parse_args()
    profile = load_profile()
    budget = args.minutes * 60
    start = time.monotonic()
    factories = {
        name: factory
        for name, factory in default_factories().items()
        if not args.backend or name in args.backend
    }
    tallies = {name: {"examples": 0, "invariant_checks": 0} for name in factories}
    while time.monotonic() - start < budget:
        for name, factory in factories.items():
            run_state_machine_as_test(
                counted(factory, name, tallies[name]),
                settings=settings(settings.default, max_examples=BATCH),
            )
    elapsed = time.monotonic() - start
    print(f"profile={profile} minutes={elapsed / 60:.1f} failures=0")
    for name, tally in tallies.items():
        steps = tally["invariant_checks"]
        print(f"{name}: examples={tally['examples']} steps={steps}", flush=True)


if __name__ == "__main__":
    main()
