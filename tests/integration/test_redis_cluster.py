"""A local 3-master Redis Cluster: tenants spread over every shard, each unit of work on
its tenant's shard, cross-tenant reads walking them all; and the shipped conformance
suite, the many-process test, the cross-host cancel and archival, run unchanged on the
cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from dogqueue import QueueCtx, rebuild
from dogqueue.audit.verify import verify_log
from dogqueue.backend.redis import RedisBackend
from dogqueue.core.message import JobMessage
from tests.integration.redis_server import RedisServer, start_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    nodes = start_cluster([tmp_path_factory.mktemp(f"node{i}") for i in range(3)])
    try:
        yield nodes
    finally:
        for node in nodes:
            node.kill()


async def test_tenants_spread_over_every_shard(cluster: list[RedisServer]) -> None:
    url = cluster[0].url
    async with RedisBackend(url, prefix="spread", durability="none", cluster=True) as backend:
        for i in range(12):
            ctx = QueueCtx(f"tenant-{i}")
            await backend.enqueue_many(ctx, [JobMessage(job_type="t", payload_bytes=b"{}")] * 3)
            for lease in await backend.dequeue_many(ctx, ["default"], 2):
                await backend.ack_complete(ctx, lease)
        assert len(await backend.ready_tenants(["default"])) == 12
        events = await backend.read_events()
        assert [e.seq for e in events] == list(range(1, 12 * 7 + 1))
        assert rebuild(events) == await backend.projected_jobs()
        report = await verify_log(backend.log_reader())
        assert report.ok, report.problems
    for node in cluster:  # every shard holds some tenant's keys
        client = redis.Redis(port=node.port)
        try:
            assert client.dbsize() > 0
        finally:
            client.close()


def test_the_conformance_suite_passes_on_the_cluster(cluster: list[RedisServer]) -> None:
    env = {
        **os.environ,
        "DOGQUEUE_REDIS_URL": cluster[0].url,
        "DOGQUEUE_REDIS_CLUSTER": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "dogqueue/testing/conformance",
            "tests/integration/test_redis_processes.py",
            "tests/integration/test_redis_cancel.py",
            "tests/integration/test_redis_archive.py",
            "-k",
            "redis",
            "-q",
            "-p",
            "no:randomly",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout
