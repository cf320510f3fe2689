"""Idle workers wake for new work: at once in-process, by `data_version` across
SQLite connections, and at the earliest `run_at` (real clock; bounded waits only)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from dogqueue import JobMessage, JobStatus, Leased, QueueAdapter, QueueCtx, Worker, utc_now
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.worker.fairness import TenantRotation
from tests.runtime.helpers import Echo, Probe, until_status, within

T = QueueCtx("tenant-a")
#: Far longer than any bounded wait below: a worker that fell back to it would hang.
NEVER = timedelta(hours=1)


async def test_idle_worker_runs_an_enqueue_from_this_process_without_polling() -> None:
    async with MemoryBackend() as backend:
        adapter: QueueAdapter[Probe] = QueueAdapter(backend)
        await adapter.register_job(Echo)
        async with Worker(adapter, context=Probe(), max_idle=NEVER, handle_signals=False):
            await asyncio.sleep(0.02)  # the worker is idle now
            job_id = await adapter.enqueue(T, Echo(text="now"))
            await until_status(backend, T, job_id, JobStatus.COMPLETED)


async def test_idle_worker_sleeps_until_the_earliest_run_at() -> None:
    async with MemoryBackend() as backend:
        adapter: QueueAdapter[Probe] = QueueAdapter(backend)
        await adapter.register_job(Echo)
        run_at = utc_now() + timedelta(milliseconds=200)
        job_id = await adapter.enqueue(T, Echo(text="soon"), run_at=run_at)
        async with Worker(adapter, context=Probe(), max_idle=NEVER, handle_signals=False):
            await until_status(backend, T, job_id, JobStatus.COMPLETED)
        leased = [e for e in await backend.history(T, job_id) if isinstance(e, Leased)]
        assert leased[0].at >= run_at


async def test_sqlite_waiter_notices_a_commit_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    async with SqliteBackend(path) as watcher, SqliteBackend(path) as other:
        waiting = asyncio.create_task(watcher.wait_for_change(NEVER.total_seconds()))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await other.enqueue(T, _message())
        await within(waiting)


async def test_worker_runs_a_job_enqueued_through_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    async with SqliteBackend(path) as backend, SqliteBackend(path) as other:
        adapter: QueueAdapter[Probe] = QueueAdapter(backend)
        await adapter.register_job(Echo)
        async with Worker(adapter, context=Probe(), max_idle=NEVER, handle_signals=False):
            await asyncio.sleep(0.02)
            job_id = await other.enqueue(T, _message())
            await until_status(backend, T, job_id, JobStatus.COMPLETED)


def _message() -> JobMessage:
    return JobMessage(job_type="echo", payload_bytes=b'{"text": "from elsewhere"}')


def test_rotation_hands_turns_round_robin_and_respects_limits() -> None:
    rotation = TenantRotation(limit_per_tenant=1)
    rotation.replace(["a", "b", "c"])
    turns = rotation.turns()
    assert next(turns) == "a"
    rotation.started("a")
    assert list(rotation.turns()) == ["b", "c"]  # "a" is at its limit
    rotation.finished("a")
    rotation.remove("b")
    assert list(rotation.turns()) == ["a", "c"]


async def test_wait_for_change_wakes_on_enqueue_release_and_retry(backend: EngineBackend) -> None:
    async def woken_by(action: Callable[[], Awaitable[object]]) -> None:
        waiting = asyncio.create_task(backend.wait_for_change(NEVER.total_seconds()))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await action()
        await within(waiting)

    await woken_by(lambda: backend.enqueue(T, _message()))
    first = await backend.dequeue(T, ["default"])
    assert first is not None
    await woken_by(lambda: backend.release(T, first))
    second = await backend.dequeue(T, ["default"])
    assert second is not None
    await backend.ack_fail(T, second, "boom", retry=False)
    await woken_by(lambda: backend.retry_job(T, second.job_id))


async def test_wait_for_change_returns_after_max_wait(backend: EngineBackend) -> None:
    await within(backend.wait_for_change(0.01))
    await within(backend.wait_for_change(0))


async def test_cancel_listeners_hear_committed_cancels_only(backend: EngineBackend) -> None:
    heard: list[tuple[str, str]] = []
    remove = backend.add_cancel_listener(lambda tenant, job_id: heard.append((tenant, job_id)))
    job_id = await backend.enqueue(T, _message())
    done_id = await backend.enqueue(T, _message())
    lease = await backend.dequeue(T, ["default"])
    assert lease is not None and lease.job_id == job_id
    await backend.ack_complete(T, lease)
    assert await backend.cancel_job(T, job_id) is JobStatus.COMPLETED  # nothing to cancel
    assert await backend.cancel_job(T, done_id) is JobStatus.CANCELED
    remove()
    await backend.cancel_job(T, done_id)
    assert heard == [("tenant-a", done_id)]
