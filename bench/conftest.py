"""Benchmark settings. A benchmark is never a timed test: nothing here fails on a time.

Quick mode (`--benchmark-disable`, or DOGQUEUE_BENCH_QUICK=1) runs every benchmark once
at small sizes, to prove they work; the full run measures every queue depth.
"""

from __future__ import annotations

import os

import pytest

#: Ready jobs in the queue while each backend operation is measured.
FULL_DEPTHS = (1_000, 100_000, 1_000_000)
QUICK_DEPTHS = (1_000,)
#: Events folded by the replay benchmark.
FULL_FOLD_EVENTS = 100_000
QUICK_FOLD_EVENTS = 3_000


def is_quick(config: pytest.Config) -> bool:
    """True when the benchmarks only need to run, not to measure."""
    disabled = bool(config.getoption("benchmark_disable", default=False))
    return disabled or os.environ.get("DOGQUEUE_BENCH_QUICK") == "1"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    quick = is_quick(metafunc.config)
    if "depth" in metafunc.fixturenames:
        depths = QUICK_DEPTHS if quick else FULL_DEPTHS
        metafunc.parametrize("depth", depths, ids=[f"depth={d:,}" for d in depths], scope="module")
    if "fold_events" in metafunc.fixturenames:
        count = QUICK_FOLD_EVENTS if quick else FULL_FOLD_EVENTS
        metafunc.parametrize("fold_events", [count], ids=[f"events={count:,}"])
