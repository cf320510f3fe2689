"""sqlite_scale.py's measurements still run against the current backend."""

from __future__ import annotations

from pathlib import Path

from bench import sqlite_scale


async def test_the_lifecycle_measure_runs(tmp_path: Path) -> None:
    assert await sqlite_scale.lifecycle(str(tmp_path / "life.db"), 64) > 0


async def test_the_open_measure_leases_from_a_built_log(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    await sqlite_scale.build(path, 50)
    figures = await sqlite_scale.open_and_lease(str(path))
    assert figures["open_s"] > 0 and figures["lease_ms"] > 0 and figures["rss_mib"] > 0


def test_processes_share_one_file(tmp_path: Path) -> None:
    from_start, from_ready, cpu = sqlite_scale.processes(tmp_path, 64, 2)
    assert 0 < from_start <= from_ready
    assert cpu > 0


async def test_the_foreign_fold_measure_folds(tmp_path: Path) -> None:
    assert await sqlite_scale.foreign_fold_us(tmp_path / "fold.db", 64) > 0
