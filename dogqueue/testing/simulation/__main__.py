"""Run the fleet simulation from the command line.

    python -m dogqueue.testing.simulation --seeds 200 [--backend MODULE:FACTORY] [--procs 2]
    python -m dogqueue.testing.simulation --seed 17 --trace trace.txt [--faults PLAN]
    python -m dogqueue.testing.simulation --soak --seeds 10 [--backend MODULE:FACTORY]

Many seeds: exit 1 at the first failing seed, after printing it, its shrunk fault plan
and the command that replays it. One seed: write its trace (and event log) if asked.
`--soak`: the same fleet on a real loop, real time and a SQLite file (not replayable).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from dogqueue.testing.factories import BackendFactory, load_factory
from dogqueue.testing.simulation.faults import Fault, format_plan, parse_plan
from dogqueue.testing.simulation.parallel import Runs, Summary, load_worker, summaries
from dogqueue.testing.simulation.run import Outcome, Simulation
from dogqueue.testing.simulation.shrink import shrink
from dogqueue.worker import Worker


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
    args: argparse.Namespace,
    factory: BackendFactory | None,
    worker: type[Worker[Any]],
    failed: Outcome,
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
    parser.add_argument(
        "--procs",
        type=int,
        default=1,
        metavar="P",
        help=f"run the seeds in P processes (this machine has {os.cpu_count()} CPUs)",
    )
    parser.add_argument(
        "--soak", action="store_true", help="real loop, time and I/O (SQLite by default)"
    )
    args = parser.parse_args(argv)
    factory = load_factory(args.backend) if args.backend else None
    worker = load_worker(args.worker)
    if args.seed is not None:
        plan = None if args.faults is None else parse_plan(args.faults)
        outcome = Simulation(
            args.seed,
            factory=factory,
            worker_class=worker,
            plan=plan,
            scale=args.scale,
            soak=args.soak,
        ).run()
        if args.trace:
            with open(args.trace, "w") as out:
                out.write("\n".join(outcome.trace) + "\n")
            with open(args.trace + ".log", "wb") as out:
                out.write(outcome.log + b"\n")
        print(_summary(outcome))
        print(f"faults: {format_plan(outcome.fired) or '(none)'}")
        return 0 if outcome.failure is None else 1
    seeds = range(args.first, args.first + (args.seeds or 100))
    if args.soak:
        return _soak(args, factory, worker, seeds)
    started, lifecycles = time.perf_counter(), 0
    runs = Runs(args.backend, args.worker, args.scale)
    for summary in summaries(runs, seeds, args.procs):
        lifecycles += summary.lifecycles
        if summary.failed:  # run again here, to trace and shrink it
            failed = Simulation(
                summary.seed, factory=factory, worker_class=worker, scale=args.scale
            ).run()
            if failed.failure is None:
                print(
                    f"seed {summary.seed} failed in another process and passed here:"
                    " something escaped the seed"
                )
            else:
                _report_failure(args, factory, worker, failed)
            return 1
        print(_line(summary), flush=True)
    wall = time.perf_counter() - started
    print(f"all passed: {lifecycles} job lifecycles in {wall:.1f} s ({lifecycles / wall:.0f}/s)")
    return 0


def _soak(
    args: argparse.Namespace,
    factory: BackendFactory | None,
    worker: type[Worker[Any]],
    seeds: range,
) -> int:
    """Soak each seed in turn; at a failure, print it and its faults (not replayable)."""
    for seed in seeds:
        outcome = Simulation(
            seed, factory=factory, worker_class=worker, scale=args.scale, soak=True
        ).run()
        print(_summary(outcome), flush=True)
        if outcome.failure is not None:
            print(f"faults: {format_plan(outcome.fired) or '(none)'}")
            return 1
    return 0


def _summary(outcome: Outcome) -> str:
    status = "ok" if outcome.failure is None else f"FAILED: {outcome.failure}"
    return (
        f"seed {outcome.seed}: {status}; {outcome.lifecycles} jobs,"
        f" {outcome.virtual_seconds:.0f} s of fleet time, {len(outcome.fired)} faults"
    )


def _line(summary: Summary) -> str:
    return (
        f"seed {summary.seed}: ok; {summary.lifecycles} jobs,"
        f" {summary.virtual_seconds:.0f} s of fleet time, {summary.faults} faults"
    )


if __name__ == "__main__":
    sys.exit(main())
