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
        ("dogqueue Worker", "NORMAL"),
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


def test_the_end_to_end_rows_and_log_size_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compare, "UNLOADED_SAMPLES", 20)
    pytest.importorskip("huey")
    for folder in ("raw", "worker", "huey"):
        (tmp_path / folder).mkdir()
    raw = compare.RUNNERS["dogqueue"](tmp_path / "raw", TINY, "NORMAL")
    worker = compare.RUNNERS["dogqueue Worker"](tmp_path / "worker", TINY, "NORMAL")
    consumer = compare.RUNNERS["huey consumer"](tmp_path / "huey", TINY, "NORMAL")
    assert raw.settings["bytes_per_job"] > 0 and worker.settings["bytes_per_job"] > 0
    assert raw.unloaded_p50_ms > 0 and raw.unloaded_p99_ms >= raw.unloaded_p50_ms
    report = compare.table([raw, worker, consumer])
    assert "of raw lifecycle" in report and "x (Worker)" in report
    assert "End to end, no-op jobs: dogqueue's Worker" in report
    assert "bytes/job" in report
