"""Print the fleet simulation's catch table: broken backends (properties/broken.py) and
broken workers (properties/broken_workers.py), each with the first seed whose run
breaks an invariant, and which.

    python -m properties.sim_catch_table [--seeds N] [--only NAME]

`CAUGHT` records the table; properties/test_sim_catch_table.py replays each row.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from dogqueue.testing.factories import BackendFactory, MemoryFactory
from dogqueue.testing.simulation import Outcome, Simulation
from dogqueue.worker import Worker
from properties.broken import WrappingFactory, mutant_classes
from properties.broken_workers import BROKEN_WORKERS

#: The broken backends whose bugs a fleet of workers can meet (the calls a Worker,
#: a producer and an operator make).
BACKENDS = (
    "SettleManyAcceptsStaleToken",
    "HeartbeatAcceptsStaleToken",
    "ReleaseAcceptsStaleToken",
    "SettleManySwallowsLeaseLostPerJob",
    "SettleManySwallowsJobCanceledPerJob",
    "ReleasesChildEarly",
    "RunsDependentOfFailedParent",
    "EnqueueTicksRepeatsATick",
    "HeartbeatSwallowsLeaseLost",
    "HeartbeatSwallowsJobCanceled",
    "SettleManyRefusesTheWholeBatch",
)

#: Runs of the table are shorter than the default (half the producing time).
SCALE = 0.5

#: name -> (seed that catches it, the invariant that broke): what the table printed
#: (`--seeds 25`).
CAUGHT: dict[str, tuple[int, str]] = {
    "HeartbeatRenewsAnotherToken": (4, "current token"),
    "SettlerAcksWithoutFence": (4, "current token"),
    "ReaperSkipsOneLease": (3, "liveness"),
    "CancelListenerDropsOne": (0, "cancel wins"),
    "SettleManyAcceptsStaleToken": (4, "current token"),
    "HeartbeatAcceptsStaleToken": (4, "current token"),
    "ReleasesChildEarly": (0, "parents first"),
    "RunsDependentOfFailedParent": (0, "parents first"),
    "EnqueueTicksRepeatsATick": (0, "cron tick once"),
    "HeartbeatSwallowsJobCanceled": (5, "cancel wins"),
}
#: name -> why no seed of the table catches it.
MISSED: dict[str, str] = {
    "ReleaseAcceptsStaleToken": "a worker releases at shutdown and after a deploy hold,"
    " never with a token it lost",
    "SettleManySwallowsLeaseLostPerJob": "the log stays right; only the worker's outcome"
    " of the job is wrong, and no invariant reads it",
    "SettleManySwallowsJobCanceledPerJob": "as above",
    "HeartbeatSwallowsLeaseLost": "the job runs on and its acknowledgement is refused:"
    " the log stays right",
    "SettleManyRefusesTheWholeBatch": "the refused batch's leases expire and the jobs run"
    " again: wasted work, no broken invariant",
}


def suspects() -> dict[str, tuple[BackendFactory, type[Worker[Any]]]]:
    """Every broken part, as the backend factory and Worker class to run."""
    memory = MemoryFactory()
    classes = mutant_classes()
    found: dict[str, tuple[BackendFactory, type[Worker[Any]]]] = {
        name: (memory, cls) for name, cls in BROKEN_WORKERS.items()
    }
    found.update({name: (WrappingFactory(memory, classes[name]), Worker) for name in BACKENDS})
    return found


def run(name: str, seed: int) -> Outcome:
    """One seed's run of the broken part `name`."""
    factory, worker = suspects()[name]
    return Simulation(seed, factory=factory, worker_class=worker, scale=SCALE).run()


def first_catch(name: str, seeds: int) -> Outcome | None:
    """The first failing run of `name` among seeds 0..seeds-1."""
    for seed in range(seeds):
        outcome = run(name, seed)
        if outcome.failure is not None:
            return outcome
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    started = time.monotonic()
    rows = []
    for name in suspects():
        if args.only and name != args.only:
            continue
        kind = "worker" if name in BROKEN_WORKERS else "backend"
        outcome = first_catch(name, args.seeds)
        if outcome is None or outcome.failure is None:
            rows.append(f"| {kind} | `{name}` | - | **NOT CAUGHT** in {args.seeds} seeds |")
        else:
            rows.append(
                f"| {kind} | `{name}` | {outcome.seed} | {outcome.failure.name} |"
                f"  # ({outcome.seed}, {outcome.failure.name!r})"
            )
        print(rows[-1], flush=True)
    print(f"\nin {time.monotonic() - started:.0f} s\n")
    print("| broken | name | seed | invariant that broke |")
    print("| --- | --- | --- | --- |")
    print("\n".join(row.split("  #")[0] for row in rows))


if __name__ == "__main__":
    main()
