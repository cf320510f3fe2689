"""A local Redis Cluster with a replica per master, faulted while workers run: a
`CLUSTER FAILOVER`, and a slot moved to another master key by key (MOVED and ASK
redirections, TRYAGAIN for a script whose keys are split between the two). No job is
lost or doubled: each is completed once and the projection equals the fold."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aredis

from dogqueue import JobStatus, QueueCtx, rebuild
from dogqueue.audit.verify import verify_log
from dogqueue.backend.redis import RedisBackend
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import QueueError, StorageError
from dogqueue.core.message import JobMessage
from tests.integration.redis_server import RedisServer, start_cluster

TENANTS = [f"tenant-{i}" for i in range(6)]
JOBS_PER_TENANT = 60
WORKERS = 3
#: Short leases: a completion whose reply a fault lost is leased again soon.
CONFIG = QueueConfig(default_lease_duration=timedelta(seconds=2))
#: The test gives up (fails) after this long.
TIMEOUT = 240.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    directories = [tmp_path_factory.mktemp(f"replicated{i}") for i in range(6)]
    nodes = start_cluster(directories, replicas=1)
    try:
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def open_backend(url: str, prefix: str) -> RedisBackend:
    return RedisBackend(url, prefix=prefix, durability="none", cluster=True, config=CONFIG)


class Run:
    """The workers' shared state: they stop at `stop`; once `held_after` jobs are done
    they hold their leases until the fault is over (so work remains after it)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.fault_over = asyncio.Event()
        self.done = 0
        self.held_after = len(TENANTS) * JOBS_PER_TENANT // 2


async def work(url: str, prefix: str, run: Run) -> None:
    """Lease and complete jobs of every tenant until `run.stop`, riding out the faults:
    a StorageError (a lost reply, a redirection retried too long) is tried again."""
    async with open_backend(url, prefix) as backend:
        while not run.stop.is_set():
            for tenant in TENANTS:
                ctx = QueueCtx(tenant)
                try:
                    leases = await backend.dequeue_many(ctx, ["default"], 4)
                except StorageError:
                    await asyncio.sleep(0.05)
                    continue
                for lease in leases:
                    await asyncio.sleep(0.005)  # the job's work
                    if run.done >= run.held_after:
                        await run.fault_over.wait()
                    with contextlib.suppress(QueueError):  # lost: the reply of a done flush
                        while True:
                            try:
                                await backend.ack_complete(ctx, lease)
                                run.done += 1
                                break
                            except StorageError:
                                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def workers(url: str, prefix: str) -> AsyncIterator[RedisBackend]:
    """Every job enqueued, then workers running while the body faults the cluster;
    on exit (the fault over, work left), waits until every job is completed, stops the
    workers and checks the log."""
    async with open_backend(url, prefix) as backend:
        for tenant in TENANTS:
            messages = [JobMessage(job_type="t", payload_bytes=b"{}")] * JOBS_PER_TENANT
            await backend.enqueue_many(QueueCtx(tenant), messages)
        run = Run()
        tasks = [asyncio.create_task(work(url, prefix, run)) for _ in range(WORKERS)]
        try:
            yield backend
            assert run.done < len(TENANTS) * JOBS_PER_TENANT  # the fault fell mid-run
            run.fault_over.set()
            await asyncio.wait_for(all_completed(backend), TIMEOUT)
        finally:
            run.stop.set()
            run.fault_over.set()
            await asyncio.gather(*tasks)
        await check_each_job_completed_once(backend)


async def all_completed(backend: RedisBackend) -> None:
    while True:
        with contextlib.suppress(StorageError):
            jobs = await backend.projected_jobs()
            if len(jobs) == len(TENANTS) * JOBS_PER_TENANT and all(
                job.status is JobStatus.COMPLETED for job in jobs.values()
            ):
                return
        await asyncio.sleep(0.2)


async def check_each_job_completed_once(backend: RedisBackend) -> None:
    total = len(TENANTS) * JOBS_PER_TENANT
    events = await backend.read_events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    completed = Counter((e.tenant_id, e.job_id) for e in events if e.type == "completed")
    assert len(completed) == total and set(completed.values()) == {1}
    assert rebuild(events) == await backend.projected_jobs()
    report = await verify_log(backend.log_reader())
    assert report.ok, report.problems


async def admin(port: int, *command: Any) -> Any:
    client: Any = aredis.Redis(port=port)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def masters(cluster: list[RedisServer]) -> dict[str, tuple[int, list[tuple[int, int]]]]:
    """Each master's node id: its port and slot ranges."""
    found: dict[str, tuple[int, list[tuple[int, int]]]] = {}
    for node in cluster:
        if (await admin(node.port, "ROLE"))[0] != b"master":
            continue
        node_id = (await admin(node.port, "CLUSTER", "MYID")).decode()
        slots = await admin(node.port, "CLUSTER", "SLOTS")
        ranges = [(int(s[0]), int(s[1])) for s in slots if int(s[2][1]) == node.port]
        found[node_id] = (node.port, ranges)
    return found


async def owner(cluster: list[RedisServer], slot: int) -> tuple[str, int]:
    """The node id and port of the master serving `slot`."""
    for node_id, (port, ranges) in (await masters(cluster)).items():
        if any(start <= slot <= end for start, end in ranges):
            return node_id, port
    raise AssertionError(f"no master serves slot {slot}")


async def replica_of(cluster: list[RedisServer], master_port: int) -> RedisServer:
    for node in cluster:
        role = await admin(node.port, "ROLE")
        if role[0] == b"slave" and int(role[2]) == master_port:
            return node
    raise AssertionError(f"the master on {master_port} has no replica")


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    async def poll() -> None:
        while not await check():  # noqa: ASYNC110 (a server's state, not an event of ours)
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), 60)


async def test_a_failover_loses_and_doubles_no_job(cluster: list[RedisServer]) -> None:
    url = cluster[0].url
    async with workers(url, "failover") as backend:
        slot = int(await admin(cluster[0].port, "CLUSTER", "KEYSLOT", backend.keys.tag("tenant-0")))
        _, old_port = await owner(cluster, slot)
        await asyncio.sleep(0.2)  # workers are mid-run
        replica = await replica_of(cluster, old_port)

        async def promoted() -> bool:
            role = await admin(replica.port, "ROLE")
            if role[0] == b"master":
                return True
            if role[3] == b"connected":  # in sync: (again) ask it to take over
                await admin(replica.port, "CLUSTER", "FAILOVER")
                await asyncio.sleep(1.0)
            return False

        await wait_until(promoted)
    assert (await owner(cluster, slot))[1] == replica.port != old_port


async def test_a_slot_moving_under_the_workers_loses_and_doubles_no_job(
    cluster: list[RedisServer],
) -> None:
    url = cluster[0].url
    async with workers(url, "migrate") as backend:
        slot = int(await admin(cluster[0].port, "CLUSTER", "KEYSLOT", backend.keys.tag("tenant-1")))
        source_id, source_port = await owner(cluster, slot)
        target_id, target_port = next(
            (node_id, port)
            for node_id, (port, _) in (await masters(cluster)).items()
            if node_id != source_id
        )
        await asyncio.sleep(0.2)  # workers are mid-run
        await admin(target_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await admin(source_port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        log_key = backend.keys.tenant_log("tenant-1").encode()
        moved = 0
        while keys := await admin(source_port, "CLUSTER", "GETKEYSINSLOT", slot, 1000):
            # The log first, the rest two by two: scripts meet the keys split for long.
            keys.sort(key=lambda key: key != log_key)
            for start in range(0, len(keys), 2):
                batch = keys[start : start + 2]
                await admin(
                    source_port, "MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *batch
                )
                moved += len(batch)
                # The workers meet ASK and TRYAGAIN meanwhile (longest with the log moved).
                await asyncio.sleep(0.3 if start == 0 else 0.05)
        for port, _ in (await masters(cluster)).values():
            await admin(port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        assert moved > 2
    assert (await owner(cluster, slot))[1] == target_port
