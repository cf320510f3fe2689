"""redis_archive.py runs its rounds on a redis-server of its own and archives every job
each round (it raises otherwise). No figure is asserted: `python bench/redis_archive.py`
measures them."""

from __future__ import annotations

from bench import redis_archive


def test_every_round_archives_every_job() -> None:
    lines = redis_archive.main(["--jobs", "50", "--rounds", "2"])
    assert [line.split()[:2] for line in lines[1:]] == [["1", "50"], ["2", "50"]]
