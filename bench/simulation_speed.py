"""How fast the fleet simulation runs: job lifecycles per wall-clock second and per CPU
second over a fixed set of seeds on the memory backend (issue 24 asks ≥ 2,000 per wall
second).

A lifecycle is a job reaching a final state in the run's log (`Outcome.lifecycles`).
Each seed's run is timed whole: setting up the fleet, the run with its invariants, the
final fold check and the teardown. CPU is the process's and its children's (user +
system): on a shared machine it moves far less than wall time. `--procs P` runs the
seeds in P processes (the command's `--procs`).

    python bench/simulation_speed.py --seeds 10 [--first 0] [--scale 1.0] [--repeat 3] [--procs 1]
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass

from dogqueue.testing.simulation import Simulation


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # ended pool processes
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Speed:
    """What a set of seeds did, and in how much time."""

    lifecycles: int
    virtual_seconds: float
    wall: float
    cpu: float

    def line(self) -> str:
        """One line of figures."""
        return (
            f"{self.lifecycles} lifecycles,"
            f" {self.virtual_seconds:.0f} s of fleet time in {self.wall:.2f} s wall"
            f" ({self.cpu:.2f} s CPU): {self.lifecycles / self.wall:,.0f} lifecycles/s wall,"
            f" {self.lifecycles / self.cpu:,.0f} per CPU s"
        )


def measure(seeds: range, scale: float = 1.0, procs: int = 1) -> Speed:
    """Run `seeds` in `procs` processes; fails if any seed breaks an invariant."""
    speed = Speed(0, 0.0, 0.0, 0.0)
    wall, cpu = time.perf_counter(), _cpu()
    for seed, lifecycles, virtual_seconds, failed in _runs(seeds, scale, procs):
        if failed:
            raise AssertionError(f"seed {seed} failed")
        speed.lifecycles += lifecycles
        speed.virtual_seconds += virtual_seconds
    speed.wall = time.perf_counter() - wall
    speed.cpu = _cpu() - cpu
    return speed


def _runs(seeds: range, scale: float, procs: int) -> Iterator[tuple[int, int, float, bool]]:
    if procs > 1:  # imported here: the figures before it existed came from the loop below
        from dogqueue.testing.simulation.parallel import Runs, summaries

        for summary in summaries(Runs(None, None, scale), seeds, procs):
            yield summary.seed, summary.lifecycles, summary.virtual_seconds, summary.failed
        return
    for seed in seeds:
        outcome = Simulation(seed, scale=scale).run()
        yield seed, outcome.lifecycles, outcome.virtual_seconds, outcome.failure is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--procs", type=int, default=1)
    args = parser.parse_args()
    seeds = range(args.first, args.first + args.seeds)
    for run in range(args.repeat):
        print(f"run {run + 1}: {measure(seeds, args.scale, args.procs).line()}", flush=True)


if __name__ == "__main__":
    main()
