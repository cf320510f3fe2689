"""A sequencer step whose process stops mid-step (its event loop blocked, the process
stopped) holds the log head's lock; the server ends that session once it idles past the
limit, so every other host's steps go on and no event is lost."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.postgres import PostgresBackend, sequencer
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.backend.postgres.queries import Q

pytestmark = pytest.mark.postgres


async def test_a_step_stuck_mid_transaction_is_ended_and_the_others_go_on(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sequencer, "IDLE_STEP_LIMIT_MS", 300)
    async with PostgresBackend(default_dsn(), schema=pg_schema) as backend:
        stuck = await asyncpg.connect(default_dsn(), server_settings={"search_path": pg_schema})
        try:
            # What a step does first, then nothing: like a process frozen mid-step.
            transaction = stuck.transaction()
            await transaction.start()
            await sequencer.bound_idle_step(stuck)
            await stuck.fetchrow(Q["lock_log_head"])

            ids = await backend.enqueue_many(
                QueueCtx("acme"), [JobMessage(job_type="t", payload_bytes=b"{}")] * 3
            )
            # This host's step waits for the lock until the server ends the stuck session
            # (its own background step, or this one, numbers the events).
            await asyncio.wait_for(backend.seal(), 60)
            events = await backend.read_events()
            assert sorted(e.job_id for e in events) == sorted(ids)
            assert [e.seq for e in events] == [1, 2, 3]
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):  # ended
                await stuck.fetchval("SELECT 1")
        finally:
            stuck.terminate()
