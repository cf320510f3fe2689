"""What a batch claims: rows it locks (ready jobs, expired leases) and holds until its
flush commits, in a transaction that shows itself to the sequencer as a writer first."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg

from dogqueue.backend.kit.batchset import BatchReads, BatchWorkingSet
from dogqueue.backend.kit.rows import from_micros
from dogqueue.backend.postgres.connections import Session
from dogqueue.backend.postgres.errors import _DRIVER_ERRORS
from dogqueue.backend.postgres.log import decode_job_at
from dogqueue.backend.postgres.queries import Q
from dogqueue.core.projection import JobKey
from dogqueue.engine import Unit

#: Expired leases reclaimed per batch at most.
RECLAIM_LIMIT = 1_000


def claims(unit: Unit[Any]) -> bool:
    """Whether the unit claims rows (ready jobs, expired leases) that must stay locked
    until its flush commits."""
    return bool(unit.reads.ready or unit.reads.expired)


def lease_only(declared: BatchReads) -> tuple[str, str, int] | None:
    """(tenant, queue, n) when the batch only leases from one tenant's queue (and so
    reclaims that tenant's expired leases): its reads take one round trip."""
    if len(declared.ready) != 1 or declared.jobs or declared.keys or declared.key_prefixes:
        return None
    ((tenant, queues), n) = next(iter(declared.ready.items()))
    if len(queues) != 1 or declared.expired != {tenant} or declared.new_jobs:
        return None
    return None if declared.dependents else (tenant, queues[0], n)


async def claim_in_one_trip(
    conn: Session, tenant: str, queue: str, n: int, clock_us: int | None
) -> tuple[datetime, BatchWorkingSet, set[JobKey]]:
    """A leasing batch's reads in one statement: its time (`clock_us`, else the
    server's), the tenant's expired leases and the queue's first `n` ready jobs, all
    claimed (SKIP LOCKED)."""
    now_us = 0
    ws = BatchWorkingSet([])
    ending: set[JobKey] = set()
    for kind, us, state, dependents in await conn.fetch(
        Q["claim_for_lease"], tenant, queue, n, RECLAIM_LIMIT, clock_us
    ):
        if kind == 0:
            now_us = int(us)
            continue
        job = decode_job_at(state)
        ws.seed(job, dependents)
        if kind == 1:  # an expired lease: the batch may end it
            ending.add((job.tenant_id, job.job_id))
    return from_micros(now_us), ws, ending


@contextlib.asynccontextmanager
async def writer_transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction that shows itself to the sequencer as this queue's writer before
    it has an xid (a claim's FOR UPDATE gives it one long before its events), and whose
    claims read ready jobs in index order."""
    # Statistics of a queue that was small (a fresh or idle one, before autovacuum's
    # next ANALYZE) made the planner read and sort every ready job for each claim.
    await conn.execute(f"BEGIN; SET LOCAL enable_sort = off; {Q['join_writers']}")
    try:
        yield
    except BaseException:
        with contextlib.suppress(*_DRIVER_ERRORS):
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
