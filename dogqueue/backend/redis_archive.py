"""Archival of a Redis queue: move the whole histories of jobs that finished before a cut
into a SQLite archive file (the format `dogqueue.backend.sqlite.archive` writes), so the
server's memory stays bounded for a queue that runs for months.

The steps (a crash between two leaves copies, never an unrecorded deletion):
1. read the numbered log and every job; choose the jobs that finished before the cut
   (`kit.archival`), only those whose every event has a position;
2. write their events, the anchors they link to and their final states to the archive;
3. on the global keys, in one transaction: the moved ranges, the live anchors (every
   chain stays verifiable: a kept event, or a tenant's next one, links to a moved hash
   kept here) and the cut, before anything is deleted (until then, the positions are
   both live and archived: copies, which `verify` accepts);
4. per tenant, one script (`archive.lua`, on the tenant's shard) deletes each chosen
   job's events and projection entries only if its version and history are still the
   ones copied: a job that became live again (retried) stays, is taken back out of the
   archive, and step 3 is redone without it (its cut replaced);
5. the sequencer's runs whose every position moved are deleted, and the cut is
   recorded in the archive too.

A crash between steps 3 and 4 of a job also retried in that window leaves its old
state in the archive, which `verify` reports until a later archival moves the job.

Like SQLite's, it is a tool the command line calls; the backends never import it. It
sits beside them, not in the Redis backend, because it writes the SQLite archive file
(`dogqueue.backend.sqlite.archive`), and no backend imports another. One archival runs
at a time per queue (a lock key with an expiry).
"""

from __future__ import annotations

import bisect
import math
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec

from dogqueue.backend.kit.archival import (
    ArchiveResult,
    Item,
    Plan,
    finished_before,
    merge_ranges,
    plan_cut,
    runs,
)
from dogqueue.backend.kit.rows import to_micros
from dogqueue.backend.redis import archived
from dogqueue.backend.redis.connect import DRIVER_ERRORS, connect
from dogqueue.backend.redis.keys import Keys, check_prefix
from dogqueue.backend.redis.log import RedisLog, log_positions, tenant_jobs
from dogqueue.backend.redis.scripts import register
from dogqueue.backend.redis.sequencer import text, unpack_head
from dogqueue.backend.sqlite.archive import fingerprint, forget_jobs, record_cut, write_archive
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.log.archive import ArchiveCut

#: How long the archival lock holds if its holder dies (milliseconds).
LOCK_MS = 30 * 60 * 1000
#: Records read per page.
PAGE = 5_000


class _Chosen:
    """A job chosen to move, with what the delete script compares and needs."""

    def __init__(self, job: JobInfo, version: int, history: bytes) -> None:
        self.job = job
        self.version = version
        self.history = history

    def args(self) -> list[Any]:
        message = self.job.message
        parents = list(message.after)
        key = message.idempotency_key or ""
        return [self.job.job_id, self.version, self.history, key, len(parents), *parents]


async def archive_before(
    url: str,
    target: str | os.PathLike[str],
    cut: datetime,
    now: datetime,
    *,
    prefix: str = "dogqueue",
    cluster: bool = False,
) -> ArchiveResult:
    """Move every job of the queue at `url` (key prefix `prefix`) that became terminal
    before `cut` to the archive file `target` (created if missing; appended to
    otherwise)."""
    if cut.tzinfo is None:
        raise InvalidInput("before", "must be timezone-aware")
    target_path = os.path.abspath(os.fspath(target))  # noqa: ASYNC240 (no I/O but getcwd)
    keys = Keys(check_prefix(prefix))
    client = connect(url, cluster=cluster)
    token = uuid.uuid4().hex
    try:
        if not await client.set(keys.archiving, token, nx=True, px=LOCK_MS):
            raise StorageError(f"another archival of queue {prefix!r} is running")
        try:
            return await _archive(client, keys, target_path, cut, now)
        finally:
            if text(await client.get(keys.archiving) or b"") == token:
                await client.delete(keys.archiving)
    except DRIVER_ERRORS as error:
        raise StorageError(f"Redis: {error}") from error
    finally:
        await client.aclose()


async def _archive(
    client: Any, keys: Keys, target_path: str, cut: datetime, now: datetime
) -> ArchiveResult:
    log = RedisLog(client, prefix=keys.prefix)
    chosen = await _choose(client, keys, cut)
    if not chosen:
        return ArchiveResult(jobs=0, events=0, archive=target_path)
    items = await _items(log, await log.anchors())
    plan = plan_cut(items, chosen)
    write_archive(target_path, plan, [c.job for c in chosen.values()])
    earlier = await archived.read_ranges(client, keys)

    def record(moved: int, plan: Plan) -> ArchiveCut:
        count, digest = fingerprint(target_path)
        return ArchiveCut(
            0,
            to_micros(now),
            to_micros(cut),
            target_path,
            moved,
            len(plan.moved_seqs),
            plan.head,
            count,
            digest,
        )

    # Recorded before the deletes: until they run, every position it names is both
    # live and archived (copies, which verify accepts); never a deletion unrecorded.
    first = record(len(chosen), plan)
    await _record(client, keys, earlier, plan, first, replace=False)
    moved = await _delete(client, keys, chosen)
    final: ArchiveCut | None = first
    if len(moved) < len(chosen):  # some became live again: they stay, and leave the archive
        plan = plan_cut(items, moved)
        forget_jobs(target_path, sorted(set(chosen) - set(moved)), plan)
        final = record(len(moved), plan) if moved else None
        await _record(client, keys, earlier, plan, final, replace=True)
    await _drop_runs(client, keys)
    if final is not None:
        record_cut(target_path, tuple(final)[1:])
    return ArchiveResult(jobs=len(moved), events=len(plan.moved_seqs), archive=target_path)


async def _choose(client: Any, keys: Keys, cut: datetime) -> dict[JobKey, _Chosen]:
    """The jobs to move, each with its stored version and history; only jobs whose every
    event is numbered (at or before its tenant's chain head)."""
    tenants = sorted(text(t) for t in await client.smembers(keys.tenants))
    heads = await client.hmget(keys.heads, tenants) if tenants else []
    chosen: dict[JobKey, _Chosen] = {}
    for tenant, head in zip(tenants, heads, strict=True):
        rows = await tenant_jobs(client, keys, tenant)
        candidates = finished_before([job for job, _, _, _ in rows], cut)
        if not candidates:
            continue
        histories = await client.hgetall(keys.of(tenant, "h"))
        sealed = unpack_head(head)[0]
        rows = [row for row in rows if (tenant, row[0].job_id) in candidates]
        # The archive, like a SQLite log, orders jobs by their enqueued event's position.
        found = await log_positions(client, keys, tenant, [tpos for _, tpos, _, _ in rows])
        for (job, _, version, _), pos in zip(rows, found, strict=True):
            history = histories.get(job.job_id.encode(), b"")
            positions = [int(p) for p in text(history).split(",") if p]
            if pos is not None and positions and max(positions) <= sealed:
                job = msgspec.structs.replace(job, enqueue_seq=pos)
                chosen[(tenant, job.job_id)] = _Chosen(job, version, bytes(history))
    return chosen


async def _items(log: RedisLog, anchors: list[Any]) -> list[Item]:
    """The numbered log's events and the anchors of earlier cuts, in position order."""
    items = [Item(a.pos, a.tenant_id, "", (), a.hash, True) for a in anchors]
    after = 0
    while page := await log.records(after=after, limit=PAGE):
        for r in page:
            if r.hash is None:
                raise StorageError(f"event {r.pos} has no chain hash; run `dogqueue verify`")
            row = (r.pos, r.tenant_id, r.job_id, r.version, r.type, r.data, r.hash, r.tpos)
            items.append(Item(r.pos, r.tenant_id, r.job_id, row, r.hash, False))
        after = page[-1].pos
    items.sort(key=lambda item: (item.seq, not item.is_anchor))
    return items


async def _delete(client: Any, keys: Keys, chosen: dict[JobKey, _Chosen]) -> set[JobKey]:
    """Delete the chosen jobs still as chosen, tenant by tenant; the ones deleted."""
    script = register(client)["archive"]
    by_tenant: dict[str, list[_Chosen]] = {}
    for (tenant, _), job in sorted(chosen.items()):
        by_tenant.setdefault(tenant, []).append(job)
    moved: set[JobKey] = set()
    for tenant, jobs in by_tenant.items():
        tag = keys.tag(tenant)
        parents = sorted({p for job in jobs for p in job.job.message.after})
        names = ["jobs", "v", "h", "e", "k", "cron", *(f"c:{p}" for p in parents)]
        args: list[Any] = [tag]
        for job in jobs:
            args += job.args()
        removed = await script(
            keys=[keys.tenant_log(tenant), *(f"{tag}:{name}" for name in names)], args=args
        )
        moved |= {(tenant, text(job_id)) for job_id in removed}
    return moved


async def _record(
    client: Any,
    keys: Keys,
    earlier: list[tuple[int, int]],
    plan: Plan,
    cut: ArchiveCut | None,
    *,
    replace: bool,
) -> None:
    """Record on the global keys what the cut moves (the ranges before it and its own),
    the anchors kept chains link to, and the cut (`replace`: instead of the last one,
    which named jobs that then stayed; None: none, every job stayed)."""
    ranges = merge_ranges([*earlier, *runs(plan.moved_seqs)])
    async with client.pipeline(transaction=True) as pipe:  # one slot: atomic
        pipe.set(keys.archived, archived.pack_ranges(ranges))
        pipe.delete(keys.anchors)
        if plan.live_anchors:
            pipe.hset(
                keys.anchors,
                mapping={pos: archived.pack_anchor(t, h) for pos, t, h in plan.live_anchors},
            )
        if replace:
            pipe.rpop(keys.cuts)
        if cut is not None:
            pipe.rpush(keys.cuts, archived.pack_cut(cut))
        await pipe.execute()


async def _drop_runs(client: Any, keys: Keys) -> None:
    """Delete the sequencer's runs whose every position moved out (their hashes are in
    the archive; a run still holding a live event stays whole)."""
    ranges = await archived.read_ranges(client, keys)
    gone: list[tuple[str, str, str]] = []  # (run id, tenant, runs member)
    async for run_id, fields in _runs(client, keys):
        pos, count = int(text(run_id).split("-")[0]), int(fields[b"n"])
        if _covered(ranges, pos, pos + count - 1):
            member = f"{int(fields[b'p'])}:{pos}:{count}"
            gone.append((text(run_id), text(fields[b"t"]), member))
    if not gone:
        return
    async with client.pipeline(transaction=True) as pipe:
        pipe.xdel(keys.log, *(run_id for run_id, _, _ in gone))
        for _, tenant, member in gone:
            pipe.zrem(keys.runs(tenant), member)
        await pipe.execute()


async def _runs(client: Any, keys: Keys) -> AsyncIterator[tuple[Any, Any]]:
    """The sequencer's runs, in position order."""
    start = "-"
    while page := await client.xrange(keys.log, start, "+", count=PAGE):
        for entry in page:
            yield entry
        start = "(" + text(page[-1][0])


def _covered(ranges: list[tuple[int, int]], first: int, last: int) -> bool:
    """Whether one of the merged, sorted `ranges` holds first..last."""
    index = bisect.bisect_right(ranges, (first, math.inf)) - 1
    return index >= 0 and ranges[index][1] >= last
