"""Many seeds at once: each seed's run in one of several processes, the results in seed
order. A run is deterministic wherever it runs, so a failing seed found here replays the
same in the caller's process (which then traces and shrinks it)."""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dogqueue.testing.factories import load_factory
from dogqueue.testing.simulation.run import Simulation
from dogqueue.worker import Worker


def load_worker(spec: str | None) -> type[Worker[Any]]:
    """The Worker class named by `package.module:Class` (the real one by default)."""
    if spec is None:
        return Worker
    module, _, name = spec.partition(":")
    worker: type[Worker[Any]] = getattr(importlib.import_module(module), name)
    return worker


@dataclass(frozen=True)
class Summary:
    """What a seed's run reports back to the caller (its trace and log stay behind)."""

    seed: int
    lifecycles: int
    virtual_seconds: float
    faults: int
    failed: bool


@dataclass(frozen=True)
class Runs:
    """Which runs to make: the seeds' shape, and the parts named as on the command line."""

    backend: str | None
    worker: str | None
    scale: float


def _run(runs: Runs, seed: int) -> Summary:
    factory = load_factory(runs.backend) if runs.backend else None
    outcome = Simulation(
        seed, factory=factory, worker_class=load_worker(runs.worker), scale=runs.scale
    ).run()
    return Summary(
        seed,
        outcome.lifecycles,
        outcome.virtual_seconds,
        len(outcome.fired),
        outcome.failure is not None,
    )


def _run_star(job: tuple[Runs, int]) -> Summary:
    return _run(*job)


def summaries(runs: Runs, seeds: range, processes: int) -> Iterator[Summary]:
    """Each seed's summary, in seed order, from `processes` processes; the pool is ended
    as soon as the caller stops reading (at a failing seed)."""
    if processes <= 1:
        yield from (_run(runs, seed) for seed in seeds)
        return
    context: Any = multiprocessing.get_context("spawn")  # no forked copy of a live loop
    pool = context.Pool(processes)
    try:
        yield from pool.imap(_run_star, [(runs, seed) for seed in seeds])
    finally:
        pool.terminate()
        pool.join()
