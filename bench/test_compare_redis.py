"""compare_redis.py runs each system's whole lifecycle on a redis-server of its own and
completes every job; peers that are not installed are skipped. No figure is asserted:
`python bench/compare_redis.py` measures them."""

from __future__ import annotations

import pytest

from bench import compare_redis


@pytest.mark.parametrize("name", compare_redis.SYSTEMS)
def test_every_job_completes(name: str) -> None:
    reason = compare_redis.missing(name)
    if reason is not None:
        pytest.skip(f"{name} cannot run here: {reason}")
    (measured,) = compare_redis.main(["--jobs", "60", "--only", name])
    assert measured.completed == 60
    assert measured.aof_per_job > 0


def test_the_archive_bench_runs_and_archives_every_job() -> None:
    from bench import redis_archive

    lines = redis_archive.main(["--jobs", "50", "--rounds", "2"])
    assert len(lines) == 3 and all(line.split()[1] == "50" for line in lines[1:])
