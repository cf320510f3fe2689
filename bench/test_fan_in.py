"""fan_in.py runs on every backend at a tiny size: the fan-in job is leased exactly once,
after the last child, and hears of every child. No figure is asserted: run
`python bench/fan_in.py` to measure."""

from __future__ import annotations

import asyncio

import pytest

from bench import fan_in


@pytest.mark.parametrize("backend", fan_in.BACKENDS)
def test_a_tiny_fan_in_runs(backend: str) -> None:
    measured = asyncio.run(fan_in.measure(backend, 30, batch=8, consumers=3))
    assert measured.children == 30
    assert measured.fan_in_events == 1 + 30 + 2  # enqueued, 30 parents, leased, completed
    assert "| 30 |" in measured.row()


def test_the_script_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert fan_in.main(["--children", "5", "--backends", "memory"]) == 0
    assert capsys.readouterr().out.startswith("| backend | children |")
