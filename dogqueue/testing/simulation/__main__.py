"""Run the fleet simulation from the command line.

    python -m dogqueue.testing.simulation --seeds 200 [--backend MODULE:FACTORY]
    python -m dogqueue.testing.simulation --seed 17 --trace trace.txt [--faults PLAN]

Many seeds: exit 1 at the first failing seed, after printing it, its shrunk fault plan
and the command that replays it. One seed: write its trace (and event log) if asked.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Any

from dogqueue.testing.factories import BackendFactory, MemoryFactory, load_factory
from dogqueue.testing.simulation.faults import Fault, format_plan, parse_plan
from dogqueue.testing.simulation.run import Outcome, Simulation
from dogqueue.testing.simulation.shrink import shrink
from dogqueue.worker import Worker


def load_worker(spec: str | None) -> type[Worker[Any]]:
    """The Worker class named by `package.module:Class` (the real one by default)."""
    if spec is None:
        return Worker
    module, _, name = spec.partition(":")
    worker: type[Worker[Any]] = getattr(importlib.import_module(module), name)
    return worker


def replay_command(args: argparse.Namespace, seed: int, plan: list[Fault] | None) -> str:
    """The command that runs `seed` again (with `plan` when it was shrunk)."""
    parts = ["python -m dogqueue.testing.simulation", f"--seed {seed}"]
    if args.backend:
        parts.append(f"--backend {args.backend}")
    if args.worker:
        parts.append(f"--worker {args.worker}")
    if plan is not None:
        parts.append(f"--faults '{format_plan(plan)}'")
    return " ".join([*parts, "--trace trace.txt"])


def _report_failure(
    args: argparse.Namespace, factory: BackendFactory, worker: type[Worker[Any]], failed: Outcome
) -> None:
    print(f"seed {failed.seed} FAILED: {failed.failure}")
    print(f"replay: {replay_command(args, failed.seed, None)}")
    if args.no_shrink or not failed.fired:
        return

    def rerun(plan: list[Fault]) -> Outcome:
        return Simulation(failed.seed, factory=factory, worker_class=worker, plan=plan).run()

    plan, outcome = shrink(rerun, failed)
    print(f"shrunk from {len(failed.fired)} faults to {len(plan)}: {format_plan(plan) or '(none)'}")
    print(f"  still fails: {outcome.failure}")
    print(f"replay the shrunk run: {replay_command(args, failed.seed, plan)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dogqueue.testing.simulation", description=__doc__.splitlines()[0]
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seeds", type=int, metavar="N", help="run seeds FIRST..FIRST+N-1")
    which.add_argument("--seed", type=int, metavar="S", help="run one seed")
    parser.add_argument("--first", type=int, default=0, metavar="FIRST")
    parser.add_argument("--backend", metavar="MODULE:FACTORY", default=None)
    parser.add_argument("--worker", metavar="MODULE:CLASS", default=None)
    parser.add_argument("--faults", metavar="PLAN", default=None, help="replay this plan")
    parser.add_argument("--trace", metavar="FILE", default=None)
    parser.add_argument("--scale", type=float, default=1.0, help="longer runs (deep mode)")
    parser.add_argument("--no-shrink", action="store_true")
    args = parser.parse_args(argv)
    factory = load_factory(args.backend) if args.backend else MemoryFactory()
    worker = load_worker(args.worker)
    if args.seed is not None:
        plan = None if args.faults is None else parse_plan(args.faults)
        outcome = Simulation(
            args.seed, factory=factory, worker_class=worker, plan=plan, scale=args.scale
        ).run()
        if args.trace:
            with open(args.trace, "w") as out:
                out.write("\n".join(outcome.trace) + "\n")
            with open(args.trace + ".log", "wb") as out:
                out.write(outcome.log + b"\n")
        print(_summary(outcome))
        print(f"faults: {format_plan(outcome.fired) or '(none)'}")
        return 0 if outcome.failure is None else 1
    started, lifecycles = time.perf_counter(), 0
    for seed in range(args.first, args.first + (args.seeds or 100)):
        outcome = Simulation(seed, factory=factory, worker_class=worker, scale=args.scale).run()
        lifecycles += outcome.lifecycles
        if outcome.failure is not None:
            _report_failure(args, factory, worker, outcome)
            return 1
        print(_summary(outcome), flush=True)
    wall = time.perf_counter() - started
    print(f"all passed: {lifecycles} job lifecycles in {wall:.1f} s ({lifecycles / wall:.0f}/s)")
    return 0


def _summary(outcome: Outcome) -> str:
    status = "ok" if outcome.failure is None else f"FAILED: {outcome.failure}"
    return (
        f"seed {outcome.seed}: {status}; {outcome.lifecycles} jobs,"
        f" {outcome.virtual_seconds:.0f} s of fleet time, {len(outcome.fired)} faults"
    )


if __name__ == "__main__":
    sys.exit(main())
