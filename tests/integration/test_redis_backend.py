"""Behaviour only the Redis backend has: durability at open, a server killed and
restarted, a lost connection, scripts flushed from the server, key layout, URLs, and
pub/sub wake-ups and cancels between backends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from dogqueue import FakeClock, JobStatus, QueueCtx
from dogqueue.audit.verify import verify_log
from dogqueue.backend.locate import open_backend
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.redis.backend import default_url
from dogqueue.core.errors import InvalidInput, JobAlreadyExists, StorageError
from dogqueue.core.message import JobMessage
from dogqueue.core.projection import rebuild
from tests.integration.redis_server import RedisServer

ACME = QueueCtx("acme")


def message(key: str | None = None) -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}", idempotency_key=key)


@pytest.fixture
def fsync_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    server.stop()


async def test_a_server_that_keeps_nothing_is_refused_unless_asked(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--appendonly", "no")  # and no snapshots
    server.start()
    try:
        with pytest.raises(StorageError, match="keeps nothing on disk"):
            await RedisBackend(server.url).open()
        with pytest.raises(StorageError, match="appendfsync always"):
            await RedisBackend(server.url, durability="always").open()
        async with RedisBackend(server.url, durability="none") as backend:
            assert await backend.enqueue(ACME, message())
        with pytest.raises(InvalidInput, match="durability"):
            RedisBackend(server.url, durability="sometimes")
    finally:
        server.stop()


async def test_nothing_acknowledged_is_lost_when_the_server_is_killed(
    fsync_server: RedisServer,
) -> None:
    backend = RedisBackend(fsync_server.url, durability="always")
    async with backend:
        ids = [await backend.enqueue(ACME, message()) for _ in range(20)]
        ids += await backend.enqueue_many(ACME, [message() for _ in range(30)])
        leases = await backend.dequeue_many(ACME, ["default"], 10)
        for lease in leases[:5]:
            await backend.ack_complete(ACME, lease)
        history = {job_id: await backend.history(ACME, job_id) for job_id in ids}
        fsync_server.kill()
        with pytest.raises(StorageError):
            await backend.enqueue(ACME, message())
        fsync_server.start()
        # The same backend object recovers once the server is back.
        assert await backend.get_status(ACME, leases[0].job_id) is JobStatus.COMPLETED
        await backend.enqueue(ACME, message())
    async with RedisBackend(fsync_server.url, durability="always") as reopened:
        for job_id, events in history.items():
            assert await reopened.history(ACME, job_id) == events
        statuses = [await reopened.get_status(ACME, lease.job_id) for lease in leases]
        assert statuses == [JobStatus.COMPLETED] * 5 + [JobStatus.LEASED] * 5
        report = await verify_log(reopened.log_reader())
        assert report.ok, report.problems
        assert report.events == 20 + 30 + 10 + 5 + 1


async def test_scripts_are_loaded_again_after_script_flush(redis_prefix: str) -> None:
    async with RedisBackend(default_url(), prefix=redis_prefix, durability="none") as backend:
        await backend.enqueue(ACME, message())
        client = redis.Redis.from_url(default_url())
        try:
            await client.script_flush()
        finally:
            await client.aclose()
        job_id = await backend.enqueue(ACME, message())
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None
        await backend.ack_complete(ACME, lease)
        assert await backend.get_status(ACME, job_id) is JobStatus.ENQUEUED
        assert len(await backend.read_events()) == 4


async def test_every_key_of_a_tenant_carries_its_hash_tag(redis_prefix: str) -> None:
    async with RedisBackend(default_url(), prefix=redis_prefix, durability="none") as backend:
        tenant = QueueCtx("we{ir}d")
        parent = await backend.enqueue(tenant, message("k1"))
        await backend.enqueue(
            tenant, JobMessage(job_type="t", payload_bytes=b"{}", after=(parent,))
        )
        lease = await backend.dequeue(tenant, ["default"])
        assert lease is not None
        await backend.read_events()
        client = redis.Redis.from_url(default_url())
        try:
            keys = [k.decode() async for k in client.scan_iter(match="{" + redis_prefix + "*")]
        finally:
            await client.aclose()
    tag = "{" + redis_prefix + ":we%7Bir%7Dd}"
    global_tag = "{" + redis_prefix + "}"
    assert any(k.startswith(tag) for k in keys)
    assert all(k.startswith((tag + ":", global_tag + ":")) for k in keys), keys


async def test_a_redis_url_opens_the_queue_its_options_name(redis_prefix: str) -> None:
    url = default_url() + f"?prefix={redis_prefix}&durability=none"
    backend = open_backend(url)
    assert isinstance(backend, RedisBackend)
    assert backend.prefix == redis_prefix
    async with backend:
        await backend.enqueue(ACME, message())
    async with RedisBackend(default_url(), prefix=redis_prefix, durability="none") as again:
        assert len(await again.read_events()) == 1


async def test_another_backend_is_woken_and_told_of_cancels(redis_prefix: str) -> None:
    url = default_url()
    async with (
        RedisBackend(url, prefix=redis_prefix, durability="none", poll_interval=30) as a,
        RedisBackend(url, prefix=redis_prefix, durability="none", poll_interval=30) as b,
    ):
        canceled: list[tuple[str, str]] = []
        a.add_cancel_listener(lambda tenant, job: canceled.append((tenant, job)))
        waiting = asyncio.ensure_future(a.wait_for_change(30))
        await asyncio.sleep(0.2)  # a is subscribed and waiting
        job_id = await b.enqueue(ACME, message())
        await asyncio.wait_for(waiting, 10)  # far less than the 30 s it would wait unwoken
        await b.cancel_job(ACME, job_id)
        for _ in range(100):
            if canceled:
                break
            await asyncio.sleep(0.05)
        assert canceled == [("acme", job_id)]


async def test_the_projection_equals_the_fold_and_rebuilds_to_it(redis_prefix: str) -> None:
    clock = FakeClock()  # retries stay in the future
    async with RedisBackend(
        default_url(), prefix=redis_prefix, durability="none", clock=clock
    ) as backend:
        first: list[str] = []
        for tenant in ("a", "b", "c"):
            ctx = QueueCtx(tenant)
            ids = await backend.enqueue_many(ctx, [message() for _ in range(5)])
            first = first or ids
            await backend.enqueue(
                ctx, JobMessage(job_type="t", payload_bytes=b"{}", after=(ids[0],))
            )
            for lease in await backend.dequeue_many(ctx, ["default"], 3):
                await backend.ack_fail(ctx, lease, "boom")
            await backend.cancel_job(ctx, ids[4])
        folded = rebuild(await backend.read_events())
        assert folded == await backend.projected_jobs()
        assert await backend.rebuild_projections() == len(await backend.read_events())
        assert rebuild(await backend.read_events()) == await backend.projected_jobs()
        report = await verify_log(backend.log_reader())
        assert report.ok, report.problems
        # The rebuilt indexes: failed jobs wait for their retry, the dependent for its
        # parent, the canceled one for nothing; one job is left to lease.
        leases = await backend.dequeue_many(QueueCtx("a"), ["default"], 10)
        assert [lease.job_id for lease in leases] == [first[3]]


def test_the_command_line_reads_a_redis_log(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer(tmp_path, "--unixsocket", str(socket_path), "--unixsocketperm", "700")
    server.start()
    try:
        url = f"unix://{socket_path}?prefix=cli&durability=none"

        async def write() -> str:
            backend = open_backend(url)
            async with backend:
                job_id = await backend.enqueue(ACME, message())
                lease = await backend.dequeue(ACME, ["default"])
                assert lease is not None
                await backend.ack_complete(ACME, lease)
                return job_id

        job_id = asyncio.run(write())
        env = {**os.environ, "DOGQUEUE_DB": url}
        for command in (
            ["verify"],
            ["history", "--tenant", "acme", job_id],
            ["jobs"],
            ["stats"],
            ["metrics"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "dogqueue", *command],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert done.stdout.strip(), command
        assert (
            "completed"
            in subprocess.run(
                [sys.executable, "-m", "dogqueue", "history", "--tenant", "acme", job_id],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            ).stdout
        )
    finally:
        server.stop()


async def test_a_sqlite_log_moves_to_redis_and_verifies(tmp_path: Path, redis_prefix: str) -> None:
    from dogqueue.backend.redis.importing import import_events
    from dogqueue.backend.sqlite import SqliteBackend

    async with SqliteBackend(tmp_path / "q.db") as sqlite:
        for tenant in ("a", "b"):
            ctx = QueueCtx(tenant)
            ids = await sqlite.enqueue_many(ctx, [message(f"k{i}") for i in range(4)])
            for lease in await sqlite.dequeue_many(ctx, ["default"], 3):
                await sqlite.ack_complete(ctx, lease)
            await sqlite.cancel_job(ctx, ids[3])
        events = await sqlite.read_events()
        jobs = await sqlite.projected_jobs()
        history = await sqlite.history(QueueCtx("b"), ids[0])
    async with RedisBackend(default_url(), prefix=redis_prefix, durability="none") as backend:
        assert await import_events(backend, events) == len(events)
        assert await backend.read_events() == events
        assert await backend.projected_jobs() == jobs
        assert await backend.history(QueueCtx("b"), ids[0]) == history
        report = await verify_log(backend.log_reader())
        assert report.ok, report.problems
        with pytest.raises(JobAlreadyExists):  # the keys came along
            await backend.enqueue(QueueCtx("a"), message("k0"))
        with pytest.raises(StorageError, match="not empty"):
            await import_events(backend, events)
