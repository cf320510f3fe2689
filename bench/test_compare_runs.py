"""compare.py's dogqueue and reference runners still work against the current schema
(the peers are optional and measured only by `python bench/compare.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import compare

TINY = compare.Workload(jobs=200, producers=4, consumers=4, lease_batch=8)


@pytest.mark.parametrize(
    ("name", "durability"),
    [
        ("dogqueue", "NORMAL"),
        ("dogqueue SQL only", "NORMAL"),
        ("sqlite3 limit", "NORMAL"),
        ("one row per commit", "NORMAL"),
    ],
)
def test_runner_completes_the_workload(
    name: str, durability: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compare, "UNLOADED_SAMPLES", 20)
    result = compare.RUNNERS[name](tmp_path, TINY, durability)
    assert result.lifecycle_per_s > 0
    assert result.settings["synchronous"] == durability
    assert name in compare.table([result]) or compare.LIMITS[name] in compare.table([result])
