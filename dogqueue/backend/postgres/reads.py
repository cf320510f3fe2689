"""A batch's declared reads, fetched before its units run: its time, enqueue
positions, loaded jobs, idempotency keys, expired leases and ready jobs, seeded into
one working set."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import msgspec

from dogqueue.backend.kit.batchset import BatchReads, BatchWorkingSet
from dogqueue.backend.kit.rows import to_micros
from dogqueue.backend.postgres.claims import RECLAIM_LIMIT
from dogqueue.backend.postgres.connections import Session
from dogqueue.backend.postgres.log import decode_job_at
from dogqueue.backend.postgres.queries import Q
from dogqueue.core.cron import prefix_end
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey

#: A batch's clock: None for the database server's.
BatchClock = Callable[[], datetime] | None


class Known(msgspec.Struct, frozen=True, gc=False):
    """A job's state and stored number of dependents, as this process last wrote them."""

    # Untracked by the cycle collector (it holds no container): a process remembers
    # thousands of leased jobs between their lease and their settle.
    job: JobInfo
    dependents: int


async def fetch_reads(
    conn: Session,
    declared: BatchReads,
    *,
    lock: bool,
    clock: BatchClock,
    known: Mapping[JobKey, Known] | None = None,
    alone: bool = False,
) -> tuple[datetime, BatchWorkingSet, set[JobKey]]:
    """The batch's time and a working set seeded with every declared read (loads
    locked if `lock`), and the jobs the batch may end. Loads found in `known` (a job's
    state and stored dependents as this process last wrote them) are seeded without a
    read when not locking: the flush's guard on version and dependents refuses them if
    the row moved since. `alone`: `conn` runs each statement in a transaction of its
    own (see `batch_time_and_seqs`)."""
    now, seqs = await batch_time_and_seqs(conn, declared.new_jobs, clock, alone=alone)
    now_us = to_micros(now)
    ws = BatchWorkingSet(seqs)
    ending = set(declared.dependents)  # jobs the batch may end
    keys = sorted(declared.jobs)
    if known and not lock:
        unknown = []
        for key in keys:
            found = known.get(key)
            if found is None:
                unknown.append(key)
            else:
                ws.seed(found.job, found.dependents)
        keys = unknown
    if keys:
        query = Q["lock_jobs"] if lock else Q["read_jobs"]
        rows = await conn.fetch(query, [k[0] for k in keys], [k[1] for k in keys])
        for row in rows:
            ws.seed(decode_job_at(row[0]), row[1])
    if declared.keys:
        tenants, names = zip(*sorted(declared.keys), strict=True)
        for tenant, key, job_id in await conn.fetch(Q["jobs_for_keys"], list(tenants), list(names)):
            ws.seed_key(tenant, key, job_id)
    expired_rows = []
    if declared.key_prefixes:
        prefixes = sorted(declared.key_prefixes)
        rows = await conn.fetch(
            Q["latest_keys"],
            [tenant for tenant, _ in prefixes],
            [prefix for _, prefix in prefixes],
            [prefix_end(prefix) for _, prefix in prefixes],
        )
        for tenant, key, job_id in rows:
            ws.seed_key(tenant, key, job_id)
    if None in declared.expired:
        expired_rows = await conn.fetch(Q["claim_expired"], now_us, RECLAIM_LIMIT)
    else:
        for tenant in sorted(t for t in declared.expired if t is not None):
            expired_rows += await conn.fetch(
                Q["claim_expired_of_tenant"], now_us, RECLAIM_LIMIT, tenant
            )
    for row in expired_rows:
        job = decode_job_at(row[0])
        ws.seed(job, row[1])
        ending.add((job.tenant_id, job.job_id))
    for (tenant, queues), n in declared.ready.items():
        # Jobs the batch loads may leave the ready set (a cancel) before a dequeue.
        wanted = n + len(declared.jobs)
        for queue in queues:
            for row in await conn.fetch(Q["claim_ready"], tenant, queue, now_us, wanted):
                ws.seed(decode_job_at(row[0]), row[1])
    return now, ws, ending


async def batch_time_and_seqs(
    conn: Session, new_jobs: int, clock: BatchClock, *, alone: bool = False
) -> tuple[datetime, list[int]]:
    """The batch's time (the server's unless a clock was given) and `new_jobs`
    enqueue positions. `alone`: `conn` is in no transaction, so this statement's
    commit is its own and need not wait for a WAL flush (never inside a transaction:
    the setting would last to that transaction's commit)."""
    suffix = "_alone" if alone else ""
    if clock is not None:
        if not new_jobs:
            return clock(), []
        seqs = [int(r[0]) for r in await conn.fetch(Q["next_seqs" + suffix], new_jobs)]
        return clock(), seqs
    row = await conn.fetchrow(Q["server_now_and_seqs" + suffix], new_jobs)
    return row[0].astimezone(UTC), [int(seq) for seq in row[1]]
