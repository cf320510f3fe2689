"""Archival of a Redis queue: finished jobs move to a SQLite archive file and leave the
server; both still verify, archived histories stay readable, a job that became live
again stays, and the command line archives and verifies a redis:// URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from dogqueue import FakeClock, JobStatus
from dogqueue.audit.checkpoint import checkpoint_of
from dogqueue.audit.verify import all_records, verify_archive, verify_log
from dogqueue.backend import redis_archive
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.redis.backend import default_cluster, default_url
from dogqueue.backend.redis.keys import Keys
from dogqueue.backend.redis.log import RedisLog
from dogqueue.backend.redis_archive import archive_before
from dogqueue.backend.sqlite.log import SqliteLogReader
from dogqueue.log import archive as archival
from dogqueue.log.archive import ArchiveReader
from tests.audit.audit_workload import ACME, GLOBEX, message, write_story
from tests.audit.cli_run import dogqueue

NOW = datetime(2030, 1, 2, tzinfo=UTC)
FINISHED = ("completed", "retried", "canceled")


def backend(prefix: str, clock: FakeClock) -> RedisBackend:
    return RedisBackend(
        default_url(), prefix=prefix, clock=clock, durability="none", cluster=default_cluster()
    )


async def story(prefix: str, clock: FakeClock) -> dict[str, str]:
    async with backend(prefix, clock) as queue:
        ids = await write_story(queue, clock)
        await queue.seal()
    return ids


async def archive(prefix: str, target: Path, cut: datetime = NOW) -> tuple[int, int]:
    result = await archive_before(
        default_url(), target, cut, NOW, prefix=prefix, cluster=default_cluster()
    )
    return result.jobs, result.events


def live_log(prefix: str) -> RedisLog:
    return RedisLog(url=default_url(), prefix=prefix, cluster=default_cluster())


async def assert_verifies(prefix: str, target: Path, **options: Any) -> None:
    live, moved = live_log(prefix), SqliteLogReader(target)
    try:
        report = await verify_log(live, archives=[moved], **options)
        assert report.ok, report.problems
        archived = await verify_archive(moved, live)
        assert archived.ok, archived.problems
    finally:
        await live.close()
        await moved.close()


async def archived_history(target: Path, job_id: str) -> list[Any]:
    moved_to = SqliteLogReader(target)
    try:
        return await moved_to.history("acme", job_id)
    finally:
        await moved_to.close()


async def records(log: Any, page: int = 1000) -> list[Any]:
    return [record async for record in all_records(log, page=page)]


async def test_archive_moves_finished_jobs_off_the_server_and_both_verify(
    redis_prefix: str, clock: FakeClock, tmp_path: Path
) -> None:
    ids = await story(redis_prefix, clock)
    log = live_log(redis_prefix)
    try:
        before = await records(log)
        histories = {role: await log.history("acme", ids[role]) for role in FINISHED}
        finished = {ids[role] for role in FINISHED}
        moved = {r.pos for r in before if r.tenant_id == "acme" and r.job_id in finished}
        target = tmp_path / "archive.db"
        assert await archive(redis_prefix, target) == (3, len(moved))
        kept = sorted({r.pos for r in before} - moved)
        assert [r.pos for r in await records(log)] == kept
        assert [r.pos for r in await records(log, page=2)] == kept  # pages across the gaps
        remaining = {job.job_id for job in await log.jobs()}
        assert not remaining & finished
        assert isinstance(log, ArchiveReader)
        assert await archival.archived_ranges(log)
        [cut] = await archival.archive_cuts(log)
        assert (cut.archive, cut.jobs, cut.events) == (str(target), 3, len(moved))
        for role in FINISHED:  # gone from the server: events, state, history list
            assert await log.history("acme", ids[role]) == []
    finally:
        await log.close()
    for role in FINISHED:
        assert await archived_history(target, ids[role]) == histories[role]
    await assert_verifies(redis_prefix, target)


async def test_a_job_that_became_live_again_stays(
    redis_prefix: str, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed job retried between the choice and the delete keeps its events on the
    server and leaves the archive."""
    ids = await story(redis_prefix, clock)
    delete = redis_archive._delete

    async def retry_first(*args: Any) -> Any:
        async with backend(redis_prefix, clock) as queue:
            await queue.retry_job(ACME, ids["retried"])
            await queue.seal()
        return await delete(*args)

    monkeypatch.setattr(redis_archive, "_delete", retry_first)
    target = tmp_path / "archive.db"
    jobs, _ = await archive(redis_prefix, target)
    assert jobs == 2
    async with backend(redis_prefix, clock) as queue:
        assert await queue.get_status(ACME, ids["retried"]) is JobStatus.ENQUEUED
        history = await queue.log_reader().history("acme", ids["retried"])
        assert history[-1].type == "requeued"
    assert await archived_history(target, ids["retried"]) == []
    assert await archived_history(target, ids["completed"])
    await assert_verifies(redis_prefix, target)


async def test_writes_after_archival_link_to_moved_heads(
    redis_prefix: str, clock: FakeClock, tmp_path: Path
) -> None:
    ids = await story(redis_prefix, clock)
    async with backend(redis_prefix, clock) as queue:
        await queue.cancel_job(GLOBEX, ids["leased"])  # globex's last event, to be moved
        await queue.seal()
    target = tmp_path / "archive.db"
    await archive(redis_prefix, target)
    async with backend(redis_prefix, clock) as queue:
        for _ in range(3):
            await queue.enqueue(GLOBEX, message())
            await queue.enqueue(ACME, message())
        await queue.seal()
        anchors = await archival.anchors(queue.log_reader())
    assert "globex" in {a.tenant_id for a in anchors}
    await assert_verifies(redis_prefix, target)


async def test_a_checkpoint_and_two_cuts_into_one_archive_verify(
    redis_prefix: str, clock: FakeClock, tmp_path: Path
) -> None:
    ids = await story(redis_prefix, clock)
    log = live_log(redis_prefix)
    try:
        report = await verify_log(log)
    finally:
        await log.close()
    saved = checkpoint_of(report.events, report.heads)
    target = tmp_path / "archive.db"
    assert (await archive(redis_prefix, target, datetime(2030, 1, 1, 0, 10, tzinfo=UTC)))[0] == 1
    async with backend(redis_prefix, clock) as queue:
        await queue.cancel_job(ACME, ids["waiting"])
        await queue.seal()
    clock.advance(timedelta(hours=1))
    await archive(redis_prefix, target, clock())
    assert await archived_history(target, ids["waiting"])
    assert await archived_history(target, ids["completed"])
    await assert_verifies(redis_prefix, target, checkpoint=saved)


async def test_steady_load_with_archival_leaves_nothing_of_finished_jobs(
    redis_prefix: str, clock: FakeClock, tmp_path: Path
) -> None:
    target = tmp_path / "archive.db"
    keys = Keys(redis_prefix)
    client = redis.Redis.from_url(default_url()) if not default_cluster() else None
    for _ in range(4):
        async with backend(redis_prefix, clock) as queue:
            for _ in range(20):
                await queue.enqueue(ACME, message())
                lease = await queue.dequeue(ACME, ["default"])
                assert lease is not None
                await queue.ack_complete(ACME, lease)
            await queue.seal()
        clock.advance(timedelta(hours=1))
        assert (await archive(redis_prefix, target, clock() - timedelta(minutes=30)))[0] == 20
        log = live_log(redis_prefix)
        try:
            assert await records(log) == [] and await log.jobs() == []
        finally:
            await log.close()
        if client is not None:  # the server holds no event, job or run of them
            assert await client.xlen(keys.tenant_log("acme")) == 0
            assert await client.xlen(keys.log) == 0
            assert await client.hlen(keys.of("acme", "h")) == 0
            assert await client.zcard(keys.runs("acme")) == 0
    if client is not None:
        await client.aclose()
    moved_to = SqliteLogReader(target)
    try:
        assert len(await records(moved_to)) == 4 * 20 * 3
    finally:
        await moved_to.close()
    await assert_verifies(redis_prefix, target)


async def test_the_command_line_archives_and_verifies_a_redis_queue(
    redis_prefix: str, clock: FakeClock, tmp_path: Path
) -> None:
    ids = await story(redis_prefix, clock)
    url = f"{default_url()}?prefix={redis_prefix}" + ("&cluster=yes" if default_cluster() else "")
    target = tmp_path / "archive.db"
    result = dogqueue("archive", "--db", url, "--before", "2030-01-02", "--to", target)
    assert result.returncode == 0, result.stderr
    assert "archived 3 job(s)" in result.stdout
    shown = dogqueue(
        "history", "--db", url, "--archive", target, "--tenant", "acme", ids["completed"]
    )
    assert shown.returncode == 0 and "completed" in shown.stdout
    verified = dogqueue("verify", "--db", url)  # finds the archive its cut names
    assert verified.returncode == 0, verified.stdout
    assert f"{target}: OK" in verified.stdout


async def test_a_finished_parent_moves_out_while_its_child_waits(
    redis_prefix: str, clock: FakeClock, tmp_path: Path
) -> None:
    async with backend(redis_prefix, clock) as queue:
        parent = await queue.enqueue(ACME, message())
        child = await queue.enqueue(ACME, message(after=(parent,)))
        done = await queue.enqueue(ACME, message(after=(parent,)))
        lease = await queue.dequeue(ACME, ["default"])
        assert lease is not None and lease.job_id == parent
        await queue.ack_complete(ACME, lease)
        lease = await queue.dequeue(ACME, ["default"])
        assert lease is not None and lease.job_id == child
        await queue.release(ACME, lease)  # the child is ready again, not finished
        await queue.cancel_job(ACME, done)
        waiting = await queue.enqueue(ACME, message())
        orphan = await queue.enqueue(ACME, message(after=(waiting,)))
        await queue.cancel_job(ACME, orphan)  # a finished child of a parent still waiting
        await queue.seal()
    target = tmp_path / "archive.db"
    assert (await archive(redis_prefix, target))[0] == 3  # the parent, the canceled children
    async with backend(redis_prefix, clock) as queue:
        assert await queue.get_status(ACME, child) is JobStatus.ENQUEUED
        assert await queue.get_status(ACME, waiting) is JobStatus.ENQUEUED
        assert (await queue.log_reader().dependencies()) == [("acme", parent, child)]
    await assert_verifies(redis_prefix, target)


async def test_the_idempotency_key_of_an_archived_job_is_released(
    redis_prefix: str, clock: FakeClock, tmp_path: Path
) -> None:
    ids = await story(redis_prefix, clock)
    target = tmp_path / "archive.db"
    await archive(redis_prefix, target)
    async with backend(redis_prefix, clock) as queue:
        again = await queue.enqueue(ACME, message(idempotency_key="order-1"))
        assert again != ids["completed"]
        assert await queue.get_status(ACME, again) is JobStatus.ENQUEUED
        await queue.seal()
    await assert_verifies(redis_prefix, target)


async def test_an_archival_stopped_before_its_deletes_leaves_copies_and_is_completed(
    redis_prefix: str, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await story(redis_prefix, clock)
    target = tmp_path / "archive.db"

    async def crash(*args: Any) -> Any:
        raise ConnectionError("the archiving host died")

    with monkeypatch.context() as patch:
        patch.setattr(redis_archive, "_delete", crash)
        with pytest.raises(Exception, match="died"):
            await archive(redis_prefix, target)
    await assert_verifies(redis_prefix, target)  # recorded and copied, nothing deleted yet
    assert (await archive(redis_prefix, target))[0] == 3
    assert await archived_history(target, ids["completed"])
    await assert_verifies(redis_prefix, target)
