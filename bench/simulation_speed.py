"""How fast the fleet simulation runs: job lifecycles per wall-clock second and per CPU
second over a fixed set of seeds on the memory backend (issue 24 asks ≥ 2,000 per wall
second).

A lifecycle is a job reaching a final state in the run's log (`Outcome.lifecycles`).
Each seed's run is timed whole: setting up the fleet, the run with its invariants, the
final fold check and the teardown.

    python bench/simulation_speed.py --seeds 10 [--first 0] [--scale 1.0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass

from dogqueue.testing.simulation import Simulation


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Speed:
    """What a set of seeds did, and in how much time."""

    lifecycles: int
    steps: int
    virtual_seconds: float
    wall: float
    cpu: float

    def line(self) -> str:
        """One line of figures."""
        return (
            f"{self.lifecycles} lifecycles, {self.steps} callbacks,"
            f" {self.virtual_seconds:.0f} s of fleet time in {self.wall:.2f} s wall"
            f" ({self.cpu:.2f} s CPU): {self.lifecycles / self.wall:,.0f} lifecycles/s wall,"
            f" {self.lifecycles / self.cpu:,.0f} per CPU s"
        )


def measure(seeds: range, scale: float = 1.0) -> Speed:
    """Run `seeds` one after another; fails if any seed breaks an invariant."""
    speed = Speed(0, 0, 0.0, 0.0, 0.0)
    for seed in seeds:
        wall, cpu = time.perf_counter(), _cpu()
        outcome = Simulation(seed, scale=scale).run()
        speed.wall += time.perf_counter() - wall
        speed.cpu += _cpu() - cpu
        if outcome.failure is not None:
            raise AssertionError(f"seed {seed}: {outcome.failure}")
        speed.lifecycles += outcome.lifecycles
        speed.steps += outcome.steps
        speed.virtual_seconds += outcome.virtual_seconds
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    seeds = range(args.first, args.first + args.seeds)
    for run in range(args.repeat):
        print(f"run {run + 1}: {measure(seeds, args.scale).line()}", flush=True)


if __name__ == "__main__":
    main()
