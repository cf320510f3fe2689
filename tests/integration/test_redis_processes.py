"""Many processes on one Redis queue: every job leased and completed exactly once; and
a Redis log that was tampered with fails verification."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dogqueue import QueueCtx, rebuild
from dogqueue.audit.verify import verify_log
from dogqueue.backend.redis import RedisBackend, sequencer
from dogqueue.backend.redis import backend as redis_backend
from dogqueue.backend.redis.backend import default_cluster, default_url
from dogqueue.backend.redis.connect import connect
from dogqueue.backend.redis.keys import Keys
from dogqueue.core.message import JobMessage

ROOT = Path(__file__).resolve().parents[2]
TENANTS = ["t0", "t1", "t2"]


def message() -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}")


def start_client(prefix: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.redis_client", default_url(), prefix, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_four_processes_complete_every_job_once(redis_prefix: str) -> None:
    jobs_per_tenant = 150
    async with RedisBackend(
        default_url(), prefix=redis_prefix, durability="none", cluster=default_cluster()
    ) as backend:
        for tenant in TENANTS:
            await backend.enqueue_many(
                QueueCtx(tenant), [message() for _ in range(jobs_per_tenant)]
            )
        processes = [start_client(redis_prefix, "lease", *TENANTS) for _ in range(4)]
        loop = asyncio.get_running_loop()
        outputs = [await loop.run_in_executor(None, p.communicate, None, 300) for p in processes]
        for process, (_, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, err
        total = len(TENANTS) * jobs_per_tenant
        assert sum(int(out) for out, _ in outputs) == total
        events = await backend.read_events()
        counts = Counter(event.type for event in events)
        assert counts == {"enqueued": total, "leased": total, "completed": total}
        leases = Counter((e.tenant_id, e.job_id) for e in events if e.type == "leased")
        assert set(leases.values()) == {1}
        assert [e.seq for e in events] == list(range(1, 3 * total + 1))
        assert rebuild(events) == await backend.projected_jobs()
        report = await verify_log(backend.log_reader())
        assert report.ok, report.problems


async def test_a_read_sees_every_event_other_sessions_committed(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More unnumbered events than one sequencer step takes: a read from a backend that
    wrote none of them still sees them all (it steps until a step is not full)."""
    monkeypatch.setattr(sequencer, "STEP_LIMIT", 3)
    monkeypatch.setattr(redis_backend, "SEAL_INTERVAL", 3600.0)  # only reads number
    options: dict[str, Any] = {"durability": "none", "cluster": default_cluster()}
    async with (
        RedisBackend(default_url(), prefix=redis_prefix, **options) as writer,
        RedisBackend(default_url(), prefix=redis_prefix, **options) as reader,
    ):
        ids = []
        for tenant in TENANTS:
            ids += await writer.enqueue_many(QueueCtx(tenant), [message() for _ in range(7)])
        events = await reader.read_events()
        assert sorted(e.job_id for e in events) == sorted(ids)
        assert [e.seq for e in events] == list(range(1, 22))


async def test_one_key_enqueued_by_eight_processes_makes_one_job(redis_prefix: str) -> None:
    processes = [start_client(redis_prefix, "key", "acme", "once") for _ in range(8)]
    loop = asyncio.get_running_loop()
    outputs = [await loop.run_in_executor(None, p.communicate, None, 300) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    lines = [out.strip() for out, _ in outputs]
    created = [line for line in lines if not line.startswith("exists")]
    assert len(created) == 1
    assert sorted(lines) == sorted(created + [f"exists {created[0]}"] * 7)
    async with RedisBackend(
        default_url(), prefix=redis_prefix, durability="none", cluster=default_cluster()
    ) as backend:
        assert [e.type for e in await backend.read_events()] == ["enqueued"]


async def _tampered(prefix: str, edit: str) -> list[str]:
    async with RedisBackend(
        default_url(), prefix=prefix, durability="none", cluster=default_cluster()
    ) as backend:
        ctx = QueueCtx("acme")
        for _ in range(3):
            await backend.enqueue(ctx, message())
            lease = await backend.dequeue(ctx, ["default"])
            assert lease is not None
            await backend.ack_complete(ctx, lease)
        assert (await verify_log(backend.log_reader())).ok
        stream = Keys(prefix).tenant_log("acme")
        client: Any = connect(default_url(), cluster=default_cluster())
        try:
            entries = await client.xrange(stream, "-", "+")
            if edit == "delete":
                await client.xdel(stream, entries[4][0])
            else:  # rewrite the stream with one byte of event 5 flipped
                await client.delete(stream)
                for entry_id, fields in entries:
                    if entry_id == entries[4][0]:
                        data = bytearray(fields[b"d"])
                        data[-1] ^= 0x01
                        fields = {**fields, b"d": bytes(data)}
                    await client.xadd(stream, fields, id=entry_id)
        finally:
            await client.aclose()
        report = await verify_log(backend.log_reader())
        return [problem.what for problem in report.problems]


async def test_a_deleted_event_fails_verification(redis_prefix: str) -> None:
    problems = await _tampered(redis_prefix, "delete")
    assert any("5" in what for what in problems), problems


async def test_a_flipped_byte_fails_verification(redis_prefix: str) -> None:
    problems = await _tampered(redis_prefix, "flip")
    assert problems
