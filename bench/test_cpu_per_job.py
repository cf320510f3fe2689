"""cpu_per_job.py's measurements still run against the current backend."""

from __future__ import annotations

from pathlib import Path

from bench import cpu_per_job


async def test_the_lifecycle_measure_runs(tmp_path: Path) -> None:
    assert await cpu_per_job.lifecycle_cpu_us(tmp_path / "life.db", 64) > 0


async def test_the_single_enqueue_measure_reports_cpu_and_latency(tmp_path: Path) -> None:
    cpu, p50 = await cpu_per_job.single_enqueue(tmp_path / "one.db")
    assert cpu > 0 and p50 > 0


async def test_the_worker_measure_runs_every_job(tmp_path: Path) -> None:
    process, loop = await cpu_per_job.worker_cpu_us(tmp_path / "worker.db", 64)
    assert process > 0 and loop > 0
