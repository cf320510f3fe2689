"""Calls racing `close()` either finish or raise BackendClosed, never a raw error from
the threads and connections being shut down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dogqueue import BackendClosed, JobMessage, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.sqlite import SqliteBackend

CTX = QueueCtx("acme")
MESSAGE = JobMessage(job_type="x", payload_bytes=b"{}")
ROUNDS = 20
CALLS_PER_ROUND = 60


def _calls(job_id: str) -> list[Callable[[EngineBackend], Awaitable[Any]]]:
    return [
        lambda b: b.enqueue(CTX, MESSAGE),
        lambda b: b.enqueue_many(CTX, [MESSAGE, MESSAGE]),
        lambda b: b.dequeue(CTX, ["default"]),
        lambda b: b.get_job(CTX, job_id),
        lambda b: b.history(CTX, job_id),
        lambda b: b.cancel_job(CTX, job_id),
        lambda b: b.reap_expired(),
        lambda b: b.read_events(),
        lambda b: b.projected_jobs(),
        lambda b: b.ready_tenants(["default"]),
        lambda b: b.next_run_at(["default"]),
        lambda b: b.rebuild_projections(),
        lambda b: b.wait_for_change(0.001),
    ]


@pytest.mark.parametrize("yields_before_close", [0, 1, 3])
async def test_calls_racing_close_get_backend_closed(
    tmp_path: Path, yields_before_close: int
) -> None:
    unexpected: list[BaseException] = []
    closed = 0
    for round_number in range(ROUNDS):
        backend = SqliteBackend(tmp_path / f"race-{round_number}.db")
        await backend.open()
        job_id = await backend.enqueue(CTX, MESSAGE)
        calls = _calls(job_id)
        tasks = [
            asyncio.ensure_future(calls[i % len(calls)](backend)) for i in range(CALLS_PER_ROUND)
        ]
        for _ in range(yields_before_close):
            await asyncio.sleep(0)
        await backend.close()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BackendClosed):
                closed += 1
            elif isinstance(outcome, BaseException):
                unexpected.append(outcome)
        # After close, every call is refused the same way.
        for call in calls:
            with pytest.raises(BackendClosed):
                await call(backend)
    assert not unexpected, f"{len(unexpected)} calls failed otherwise: {unexpected[:5]!r}"


async def test_the_writer_refuses_every_call_once_closed(tmp_path: Path) -> None:
    """After close, each of the writer's entry points raises BackendClosed, not the
    stopped thread's RuntimeError, and none opens the connection again."""
    backend = SqliteBackend(tmp_path / "closed-writer.db")
    await backend.open()
    writer = backend.writer
    await backend.close()
    entry_points: list[Callable[[], Awaitable[Any]]] = [
        writer.data_version,
        writer.load_projection,
        lambda: writer.read(lambda projection: None),
        lambda: writer.call(lambda conn: None),
    ]
    for entry_point in entry_points:
        with pytest.raises(BackendClosed):
            await entry_point()
    assert writer._conn is None


async def test_a_checkpoint_flush_after_close_is_refused(tmp_path: Path) -> None:
    # `projected_jobs` flushes the checkpoint on a thread: one that started before close
    # and reached the flush after it got a raw "cannot schedule new futures".
    backend = SqliteBackend(tmp_path / "flush.db")
    await backend.open()
    await backend.enqueue(CTX, MESSAGE)
    checkpointer = backend.writer.projection_checkpointer  # as the racing flush holds it
    assert checkpointer is not None
    await backend.close()
    with pytest.raises(BackendClosed):
        checkpointer.flush()
