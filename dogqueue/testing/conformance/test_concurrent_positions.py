"""Many appenders at once, through several handles on the same storage where the
factory can reopen it: the events each call appends take consecutive positions (calls
never interleave), the log's positions come out dense and increasing, tenant positions
dense per tenant, and a reader polling meanwhile only ever sees a prefix of the log."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from dogqueue import QueueCtx
from dogqueue.backend.contract import Backend
from dogqueue.log.reader import LogRecord
from dogqueue.testing.factories import BackendFactory

from .helpers import message

APPENDERS = 6
CALLS = 5
JOBS_PER_CALL = 12
#: Seconds the appended events may take to be numbered once written (PostgreSQL's
#: sequencer numbers them after their commit).
NUMBERED_WITHIN = 30.0


async def numbered_log(backend: Backend, total: int) -> list[LogRecord]:
    """The log's records once all `total` events have positions."""
    log = backend.log_reader(wait_for_own_writes=False)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NUMBERED_WITHIN
        while (records := await log.records()) and len(records) < total:
            assert loop.time() < deadline, f"{total - len(records)} events never numbered"
            await asyncio.sleep(0.01)
        return records
    finally:
        await log.close()


async def test_concurrent_appends_take_dense_non_interleaving_positions(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    reopen = getattr(backend_factory, "reopen", None)
    handles = [backend] + ([reopen(backend), reopen(backend)] if reopen is not None else [])
    for handle in handles[1:]:
        await handle.open()
    start = asyncio.Event()
    calls: list[list[str]] = []
    seen: list[list[LogRecord]] = []

    async def append(index: int) -> None:
        handle, ctx = handles[index % len(handles)], QueueCtx(f"tenant-{index % 3}")
        await start.wait()
        for _ in range(CALLS):
            calls.append(await handle.enqueue_many(ctx, [message()] * JOBS_PER_CALL))
            await asyncio.sleep(0)  # a backend that never suspends still lets others in

    async def poll(appending: asyncio.Future[list[None]]) -> None:
        log = backend.log_reader(wait_for_own_writes=False)
        try:
            # Connected before the appenders start: on a loaded machine, opening the
            # reader's connection took longer than all the appends.
            await log.records()
            start.set()
            while not appending.done():
                seen.append(await log.records())
                await asyncio.sleep(0)
        finally:
            start.set()
            await log.close()

    try:
        appending = asyncio.gather(*(append(index) for index in range(APPENDERS)))
        polling = asyncio.ensure_future(poll(appending))
        await appending
        await polling
    finally:
        for handle in handles[1:]:
            await handle.close()

    total = APPENDERS * CALLS * JOBS_PER_CALL
    records = await numbered_log(backend, total)
    assert [r.pos for r in records] == list(range(1, total + 1))
    position = {r.job_id: r.pos for r in records if r.type == "enqueued"}
    for ids in calls:
        first = position[ids[0]]
        assert [position[job_id] for job_id in ids] == list(range(first, first + len(ids)))
    by_tenant: dict[str, list[int]] = defaultdict(list)
    for record in records:
        by_tenant[record.tenant_id].append(record.tpos)
    for tenant_positions in by_tenant.values():
        assert tenant_positions == list(range(1, len(tenant_positions) + 1))
    assert len(seen) > 1, "the reader never read while appenders ran"
    for read in seen:
        assert read == records[: len(read)], "a reader saw positions that are not a prefix"
