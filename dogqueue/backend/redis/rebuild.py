"""Rebuilding one tenant's projection from its log."""

from __future__ import annotations

from typing import Any

from dogqueue.backend.redis.keys import Keys
from dogqueue.backend.redis.sequencer import text
from dogqueue.backend.redis.workingset import index_entry
from dogqueue.core.codec import encode_job
from dogqueue.core.cron import KEY_NAMESPACE
from dogqueue.core.projection import rebuild
from dogqueue.log.stored import stored_event

#: Characters that SCAN's MATCH pattern treats as special.
_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})


async def rebuild_tenant(client: Any, keys: Keys, tenant: str) -> int:
    """Replace the tenant's projection (jobs, versions, keys, indexes, dependents) with
    the fold of its stream, in one transaction; return the events folded. FIFO keys
    become the enqueued events' tenant positions."""
    rows = await client.xrange(keys.tenant_log(tenant), "-", "+")
    events = [stored_event(fields[b"d"], int(text(i).split("-")[0])) for i, fields in rows]
    jobs = rebuild(events)
    tag = keys.tag(tenant)
    stale = [
        key async for key in client.scan_iter(match=tag.translate(_GLOB) + ":[rpc]:*", count=1000)
    ]
    histories: dict[str, list[int]] = {}
    for event in events:
        histories.setdefault(event.job_id, []).append(event.seq)
    async with client.pipeline(transaction=True) as pipe:
        for name in ("jobs", "v", "e", "h", "k", "cron", "l"):
            pipe.delete(keys.of(tenant, name))
        if stale:
            pipe.delete(*stale)
        for job in sorted(jobs.values(), key=lambda j: j.enqueue_seq):
            job_id = job.job_id
            pipe.hset(keys.of(tenant, "jobs"), job_id, encode_job(job))
            pipe.hset(keys.of(tenant, "v"), job_id, job.version)
            pipe.hset(keys.of(tenant, "e"), job_id, job.enqueue_seq)
            key = job.message.idempotency_key
            if key is not None:
                pipe.hset(keys.of(tenant, "k"), key, job_id)
                if key.startswith(KEY_NAMESPACE):
                    pipe.zadd(keys.of(tenant, "cron"), {key: 0})
            for parent in job.message.after:
                pipe.rpush(keys.of(tenant, "c:" + parent), job_id)
            kind, queue, priority, score, member = index_entry(job)
            if kind == "r":
                pipe.zadd(keys.of(tenant, f"r:{queue}:{priority}"), {member: score})
                pipe.zadd(keys.of(tenant, f"p:{queue}"), {str(priority): -int(priority)})
            elif kind == "l":
                pipe.zadd(keys.of(tenant, "l"), {member: score})
        for stream, positions in histories.items():  # jobs' and the control stream's
            pipe.hset(keys.of(tenant, "h"), stream, "".join(f"{p}," for p in positions))
        if events:
            pipe.set(keys.of(tenant, "fifo"), max(e.seq for e in events))
        await pipe.execute()
    return len(events)
