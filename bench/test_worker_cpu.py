"""worker_cpu.py's measurement still runs every job through the real Worker."""

from __future__ import annotations

from bench import worker_cpu


async def test_the_worker_alone_runs_every_job_and_counts_collections() -> None:
    cpu, collections = await worker_cpu.worker_alone(600)
    assert cpu > 0
    assert collections.counts[0] > 0  # 600 jobs make more than 700 tracked objects
