"""compare_pg.py runs each system's whole workload on the local PostgreSQL, in real
processes, with every job started once and completed once. Peers that are not installed
(the `test` extra has neither procrastinate nor PgQueuer) are skipped, and so is dogqueue
while its PostgreSQL backend is absent. No figure is asserted: `python bench/compare_pg.py`
measures them."""

from __future__ import annotations

import dataclasses

import pytest

from bench import compare_pg

TINY = compare_pg.Settings(jobs=200, tasks=4, lease_batch=8, latency_jobs=10, latency_rate=200)


@pytest.mark.parametrize("name", compare_pg.SYSTEMS)
def test_every_job_starts_and_completes_exactly_once(name: str) -> None:
    reason = compare_pg.missing(name)
    if reason is not None:
        pytest.skip(f"{name} cannot run here: {reason}")
    measured = compare_pg.measure(name, 1, TINY)
    assert (measured.started_once, measured.started_twice, measured.never_started) == (200, 0, 0)
    assert measured.completed_in_db == 200
    assert len(measured.latencies) >= TINY.latency_jobs
    assert measured.wal_bytes_per_job > 0
    assert measured.own_wal_bytes_per_job is None or measured.own_wal_bytes_per_job > 0
    compare_pg.check(measured)
    assert compare_pg.LABELS[name].split(" ")[0] in compare_pg.table([[measured]], TINY)


@pytest.mark.parametrize("name", compare_pg.SYSTEMS)
def test_the_bulk_shape_starts_and_completes_every_job_once(name: str) -> None:
    reason = compare_pg.missing(name)
    if reason is not None:
        pytest.skip(f"{name} cannot run here: {reason}")
    bulk = dataclasses.replace(TINY, enqueue_batch=30, latency_jobs=0)
    measured = compare_pg.measure(name, 1, bulk)
    compare_pg.check(measured)
    assert "lists of 30" in compare_pg.table([[measured]], bulk)


def test_a_job_started_twice_or_never_fails_the_run() -> None:
    clean = compare_pg.Measurement(
        system="bare",
        processes=1,
        jobs=2,
        lifecycle_per_s=1.0,
        enqueue_per_s=1.0,
        wal_bytes_per_job=1.0,
        own_wal_bytes_per_job=None,
        latencies=[],
        started_once=2,
        started_twice=0,
        never_started=0,
        completed_in_db=2,
    )
    compare_pg.check(clean)
    for broken in (
        dataclasses.replace(clean, started_once=1, started_twice=1),
        dataclasses.replace(clean, started_once=1, never_started=1),
        dataclasses.replace(clean, completed_in_db=1),
    ):
        with pytest.raises(RuntimeError, match="bare x1"):
            compare_pg.check(broken)
