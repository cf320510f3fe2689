"""The golden logs (written by older dogqueue builds on SQLite) move to Redis as they
are and verify there, with every job as the SQLite log holds it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dogqueue.audit.verify import verify_log
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.redis.backend import default_cluster, default_url
from dogqueue.backend.redis.importing import import_events
from dogqueue.backend.sqlite import SqliteBackend

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("name", ["story-v2.db", "story-v6.db"])
async def test_a_golden_log_moves_to_redis_and_verifies(
    name: str, tmp_path: Path, redis_prefix: str
) -> None:
    copy = tmp_path / name
    shutil.copy(GOLDEN / name, copy)
    async with SqliteBackend(copy) as sqlite:
        events = await sqlite.read_events()
        jobs = await sqlite.projected_jobs()
    assert events
    async with RedisBackend(
        default_url(), prefix=redis_prefix, durability="none", cluster=default_cluster()
    ) as backend:
        assert await import_events(backend, events) == len(events)
        assert await backend.read_events() == events
        assert await backend.projected_jobs() == jobs
        report = await verify_log(backend.log_reader())
        assert report.ok, report.problems
