"""`dogqueue import` to and from Redis: the demo's SQLite log moved to Redis and back
to a SQLite file, and a PostgreSQL log moved to Redis, each numbered and verified with
the same chain heads and the same fold as its source; a non-empty target refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dogqueue.audit.verify import verify_log
from dogqueue.backend.importing import read_log
from dogqueue.backend.locate import open_log
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.redis.backend import default_cluster, default_url
from dogqueue.cli.demo_pipeline import run_demo
from dogqueue.core.errors import StorageError
from dogqueue.core.projection import rebuild
from dogqueue.transfer import import_log
from tests.audit.cli_run import dogqueue


def redis_url(prefix: str) -> str:
    cluster = "&cluster=yes" if default_cluster() else ""
    return f"{default_url()}?prefix={prefix}&durability=none{cluster}"


async def heads_and_fold(db: str | Path) -> tuple[dict[str, tuple[int, bytes]], object]:
    log = open_log(db)
    try:
        report = await verify_log(log)
    finally:
        await log.close()
    assert report.ok, report.problems
    return report.heads, rebuild(await read_log(db))


async def test_the_demo_log_goes_to_redis_and_back_to_sqlite_unchanged(
    tmp_path: Path, redis_prefix: str
) -> None:
    await run_demo(tmp_path, write=lambda line: None)
    source = tmp_path / "inbox.db"
    heads, fold = await heads_and_fold(source)
    assert heads and fold

    there = redis_url(redis_prefix)
    done = await asyncio.to_thread(dogqueue, "import", "--from", str(source), "--to", there)
    assert done.returncode == 0, done.stderr
    assert f"into Redis queue {redis_prefix!r}" in done.stdout and "verified: OK" in done.stdout
    assert await heads_and_fold(there) == (heads, fold)

    back = tmp_path / "back.db"
    imported = await import_log(there, back)
    assert imported.report.ok, imported.report.problems
    assert imported.report.heads == heads
    assert await heads_and_fold(back) == (heads, fold)

    again = await asyncio.to_thread(dogqueue, "import", "--from", str(source), "--to", there)
    assert again.returncode == 2 and "not empty" in again.stderr
    with pytest.raises(StorageError, match="not empty"):
        await import_log(source, back)
    assert await heads_and_fold(back) == (heads, fold)  # nothing appended


async def test_a_postgresql_log_moves_to_redis(
    tmp_path: Path, pg_schema: str, redis_prefix: str
) -> None:
    await run_demo(tmp_path, write=lambda line: None)
    postgres = f"{default_dsn()}?schema={pg_schema}"
    assert (await import_log(tmp_path / "inbox.db", postgres)).report.ok
    heads, fold = await heads_and_fold(postgres)

    imported = await import_log(postgres, redis_url(redis_prefix))
    assert imported.report.ok, imported.report.problems
    assert await heads_and_fold(redis_url(redis_prefix)) == (heads, fold)
