"""Every broken part in the fleet simulation's catch table is caught by the seed the
table names, with the invariant it names (properties/sim_catch_table.py)."""

from __future__ import annotations

import pytest

from properties.broken_workers import BROKEN_WORKERS
from properties.sim_catch_table import CAUGHT, MISSED, run, suspects


# A broken backend hands the worker None for a lease; the worker's code then fails
# half-way through building calls, whose coroutines are collected unawaited.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", sorted(CAUGHT))
def test_the_broken_part_is_caught_by_its_seed(name: str) -> None:
    seed, invariant = CAUGHT[name]
    outcome = run(name, seed)
    assert outcome.failure is not None, f"{name} passed seed {seed}"
    assert outcome.failure.name == invariant, str(outcome.failure)


def test_the_table_covers_every_broken_worker_and_names_what_it_misses() -> None:
    assert set(CAUGHT) | set(MISSED) == set(suspects())
    caught_workers = set(BROKEN_WORKERS) & set(CAUGHT)
    assert len(caught_workers) >= 3, caught_workers
