"""Reading a Redis queue's log: positions, hashes and the projection, read-only."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from dogqueue.backend.redis import archived
from dogqueue.backend.redis.keys import Keys
from dogqueue.backend.redis.sequencer import text, unpack_head
from dogqueue.core.codec import encode_job
from dogqueue.core.errors import StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import rebuild
from dogqueue.log.archive import Anchor, ArchiveCut
from dogqueue.log.reader import LogPos, LogRecord, ProjectionRow, TenantPos, WriterSeq
from dogqueue.log.stored import stored_event, stored_job

#: Runs of the global log read per call.
RUN_PAGE = 500


class RedisLog:
    """The LogReader of a Redis queue. Reads only: it never writes. Given a backend's
    client and `before_read` (its sequencer), reads see the caller's own writes; given a
    URL instead, it connects on first use."""

    def __init__(
        self,
        client: Any = None,
        *,
        prefix: str = "dogqueue",
        before_read: Callable[[], Awaitable[int]] | None = None,
        url: str | None = None,
        cluster: bool = False,
    ) -> None:
        self._client = client
        self._keys = Keys(prefix)
        self._before_read = before_read
        self._url = url
        self._cluster = cluster
        self._owns_client = client is None
        self._limit: int | None = None
        #: Inside a snapshot: each tenant's last numbered tenant position at entry.
        self._cut: dict[str, int] | None = None

    async def _redis(self) -> Any:
        if self._client is None:
            if self._url is None:
                raise StorageError("the log reader has neither a client nor a URL")
            from dogqueue.backend.redis.connect import connect

            self._client = connect(self._url, cluster=self._cluster)
        return self._client

    async def _call(self, read: Callable[[Any], Awaitable[Any]]) -> Any:
        from dogqueue.backend.redis.connect import DRIVER_ERRORS

        client = await self._redis()
        try:
            if self._before_read is not None and self._limit is None:
                await self._before_read()
            return await read(client)
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Reads inside see the log as it was numbered at entry: positions up to the
        last one then, and each job as its events up to then fold (a job written since
        is folded again from its events before the cut; one created since is left out)."""
        if self._limit is not None:
            yield
            return

        async def cut(client: Any) -> tuple[int, dict[str, int]]:
            async with client.pipeline(transaction=True) as pipe:  # one slot: atomic
                pipe.get(self._keys.pos)
                pipe.hgetall(self._keys.heads)
                last, heads = await pipe.execute()
            return int(last or 0), {text(t): unpack_head(h)[0] for t, h in heads.items()}

        self._limit, self._cut = await self._call(cut)
        try:
            yield
        finally:
            self._limit = self._cut = None

    async def _tenants(self, client: Any) -> list[str]:
        return sorted(text(t) for t in await client.smembers(self._keys.tenants))

    async def records(self, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        return await self._call(lambda client: self._records(client, after, limit))  # type: ignore[no-any-return]

    async def _records(self, client: Any, after: int, limit: int | None) -> list[LogRecord]:
        # Archival leaves gaps: read window after window until `limit` records or the end.
        records: list[LogRecord] = []
        while True:
            wanted = None if limit is None else limit - len(records)
            found, after = await self._window(client, after, wanted)
            records += found
            if after < 0 or (limit is not None and len(records) >= limit):
                return records

    async def _window(
        self, client: Any, after: int, limit: int | None
    ) -> tuple[list[LogRecord], int]:
        """The records of the positions after `after` (at most `limit` of them), and
        where the next window starts (-1: at the end)."""
        keys = self._keys
        async with client.pipeline(transaction=False) as pipe:  # one slot, one round trip
            pipe.get(keys.pos)
            pipe.xrevrange(keys.log, f"{after + 1}-0", "-", count=1)
            pipe.xrange(keys.log, f"{after + 2}-0", "+", count=limit)
            stored_last, first_run, later_runs = await pipe.execute()
        last = int(stored_last or 0) if self._limit is None else self._limit
        end = last if limit is None else min(last, after + limit)
        if end <= after:
            return [], -1
        runs = [*first_run, *later_runs]
        resume = _resume(runs, end, last)
        records: list[LogRecord] = []
        async with client.pipeline(transaction=False) as pipe:
            wanted = []
            for run_id, fields in runs:
                pos = int(text(run_id).split("-")[0])
                tenant, tpos, count = text(fields[b"t"]), int(fields[b"p"]), int(fields[b"n"])
                if pos + count - 1 <= after or pos > end:
                    continue
                wanted.append((pos, tenant, tpos, count, bytes(fields[b"h"])))
                pipe.xrange(keys.tenant_log(tenant), f"{tpos}-0", f"{tpos + count - 1}-0")
            entries = await pipe.execute() if wanted else []
        for (pos, tenant, tpos, _, hashes), rows in zip(wanted, entries, strict=True):
            for entry_id, fields in rows:
                at = int(text(entry_id).split("-")[0])
                p = pos + at - tpos
                if after < p <= end:
                    records.append(_record(p, tenant, at, fields, hashes[(at - tpos) * 32 :][:32]))
        return records, resume

    async def unsealed(self) -> list[LogRecord]:
        return await self._call(self._unsealed)  # type: ignore[no-any-return]

    async def _unsealed(self, client: Any) -> list[LogRecord]:
        keys = self._keys
        tenants = await self._tenants(client)
        if not tenants:
            return []
        heads = await client.hmget(keys.heads, tenants)
        found: list[LogRecord] = []
        for tenant, head in zip(tenants, heads, strict=True):
            tpos = unpack_head(head)[0]
            for entry_id, fields in await client.xrange(
                keys.tenant_log(tenant), f"{tpos + 1}-0", "+"
            ):
                at = int(text(entry_id).split("-")[0])
                record = _record(0, tenant, at, fields, None)
                found.append(record._replace(writer_seq=WriterSeq(at)))
        return found

    async def _last(self, client: Any) -> int:
        return int(await client.get(self._keys.pos) or 0)

    async def last_position(self) -> int:
        if self._limit is not None:
            return self._limit
        return await self._call(self._last)  # type: ignore[no-any-return]

    async def events(self, *, after: int = 0, limit: int | None = None) -> list[AnyEvent]:
        return [stored_event(r.data, r.pos) for r in await self.records(after=after, limit=limit)]

    async def tenant_events(self, tenant_id: str) -> list[AnyEvent]:
        async def read(client: Any) -> list[AnyEvent]:
            rows = await client.xrange(self._keys.tenant_log(tenant_id), "-", "+")
            return [stored_event(f[b"d"], int(text(i).split("-")[0])) for i, f in rows]

        return await self._call(read)  # type: ignore[no-any-return]

    async def history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        return await self._call(lambda client: read_history(client, self._keys, tenant_id, job_id))  # type: ignore[no-any-return]

    async def jobs(self, tenant_id: str | None = None) -> list[JobInfo]:
        async def read(client: Any) -> list[JobInfo]:
            if tenant_id is not None:
                rows = await self._tenant_jobs(client, tenant_id)
                return [job for job, _, _, _ in rows]
            return [job for job, _, _ in await self._all_jobs(client)]

        return await self._call(read)  # type: ignore[no-any-return]

    async def _all_jobs(self, client: Any) -> list[tuple[JobInfo, int, bytes]]:
        """Every job with its enqueued event's log position as enqueue_seq, in that
        order, its stored version and its stored state."""
        found: list[tuple[JobInfo, int | None, int, bytes]] = []
        for tenant in await self._tenants(client):
            rows = await self._tenant_jobs(client, tenant)
            positions = await log_positions(client, self._keys, tenant, [t for _, t, _, _ in rows])
            for (job, _, version, state), pos in zip(rows, positions, strict=True):
                if pos is not None:
                    job = msgspec.structs.replace(job, enqueue_seq=pos)
                found.append((job, pos, version, state))
        found.sort(key=lambda item: (item[1] is None, item[1] or 0, item[0].tenant_id))
        return [(job, version, state) for job, _, version, state in found]

    async def _tenant_jobs(
        self, client: Any, tenant_id: str
    ) -> list[tuple[JobInfo, int | None, int, bytes]]:
        rows = await tenant_jobs(client, self._keys, tenant_id)
        if self._cut is None:
            return rows
        cut = self._cut.get(tenant_id, 0)
        histories = await client.hgetall(self._keys.of(tenant_id, "h"))
        kept = []
        for job, tpos, version, state in rows:
            positions = [
                int(p) for p in text(histories.get(job.job_id.encode(), b"")).split(",") if p
            ]
            if positions and max(positions) <= cut:
                kept.append((job, tpos, version, state))
                continue
            events = await read_history(client, self._keys, tenant_id, job.job_id, cut)
            if events:  # written since the cut: as its events up to the cut fold
                folded = rebuild(events)[(tenant_id, job.job_id)]
                fifo = stored_job(state, job.job_id).enqueue_seq
                old_state = encode_job(msgspec.structs.replace(folded, enqueue_seq=fifo))
                kept.append((folded, folded.enqueue_seq, folded.version, old_state))
        return kept

    async def projection_rows(self) -> list[ProjectionRow]:
        async def read(client: Any) -> list[ProjectionRow]:
            rows = []
            for job, version, state in await self._all_jobs(client):
                message = job.message
                rows.append(
                    ProjectionRow(
                        tenant_id=job.tenant_id,
                        job_id=job.job_id,
                        status=job.status.value,
                        queue=message.queue,
                        priority=int(message.priority),
                        job_type=message.job_type,
                        run_at=job.run_at,
                        lease_expires_at=job.lease_expires_at,
                        idempotency_key=message.idempotency_key,
                        version=version,
                        enqueue_seq=stored_job(state, job.job_id).enqueue_seq,
                        enqueue_pos=job.enqueue_seq,
                        state=state,
                    )
                )
            return rows

        return await self._call(read)  # type: ignore[no-any-return]

    async def status_counts(self) -> dict[tuple[str, str], int] | None:
        return None

    async def dependencies(self) -> list[tuple[str, str, str]]:
        async def read(client: Any) -> list[tuple[str, str, str]]:
            found = []
            for tenant in await self._tenants(client):
                rows = await tenant_jobs(client, self._keys, tenant)
                # A parent archival moved out keeps the list of its children still here.
                ids = sorted(
                    {job.job_id for job, _, _, _ in rows}
                    | {parent for job, _, _, _ in rows for parent in job.message.after}
                )
                async with client.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.lrange(self._keys.of(tenant, "c:" + job_id), 0, -1)
                    children = await pipe.execute() if ids else []
                for parent, kids in zip(ids, children, strict=True):
                    found += [(tenant, parent, text(kid)) for kid in kids]
            return found

        return await self._call(read)  # type: ignore[no-any-return]

    async def anchors(self) -> list[Anchor]:
        return await self._call(lambda client: archived.read_anchors(client, self._keys))  # type: ignore[no-any-return]

    async def archived_ranges(self) -> list[tuple[int, int]]:
        return await self._call(lambda client: archived.read_ranges(client, self._keys))  # type: ignore[no-any-return]

    async def archive_cuts(self) -> list[ArchiveCut]:
        return await self._call(lambda client: archived.read_cuts(client, self._keys))  # type: ignore[no-any-return]

    async def chain_heads(self) -> dict[str, tuple[int, bytes]]:
        async def read(client: Any) -> dict[str, tuple[int, bytes]]:
            heads = await client.hgetall(self._keys.heads)
            return {text(t): unpack_head(h)[1:] for t, h in heads.items()}

        return await self._call(read)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def _resume(runs: list[Any], end: int, last: int) -> int:
    """Where the window after one ending at `end` starts (-1: none): at `end`, or,
    where no run holds `end + 1` (archival deleted it), just before the next run."""
    if end >= last:
        return -1
    spans = [(int(text(run_id).split("-")[0]), int(fields[b"n"])) for run_id, fields in runs]
    if any(start <= end + 1 < start + count for start, count in spans):
        return end
    later = [start for start, _ in spans if start > end + 1]
    return min(later) - 1 if later else end


def _record(
    pos: int, tenant: str, tpos: int, fields: dict[bytes, Any], digest: bytes | None
) -> LogRecord:
    return LogRecord(
        LogPos(pos),
        tenant,
        text(fields.get(b"j", b"")),
        int(fields.get(b"v", 0)),
        text(fields.get(b"t", b"")),
        bytes(fields.get(b"d", b"")),
        digest,
        TenantPos(tpos),
    )


async def read_history(
    client: Any, keys: Keys, tenant_id: str, job_id: str, upto: int | None = None
) -> list[AnyEvent]:
    """The job's events (up to tenant position `upto`), each `seq` its tenant position."""
    listed = await client.hget(keys.of(tenant_id, "h"), job_id)
    if not listed:
        return []
    positions = [int(p) for p in text(listed).split(",") if p and (upto is None or int(p) <= upto)]
    async with client.pipeline(transaction=False) as pipe:
        for tpos in positions:
            pipe.xrange(keys.tenant_log(tenant_id), f"{tpos}-0", f"{tpos}-0")
        rows = await pipe.execute()
    return [
        stored_event(found[0][1][b"d"], tpos)
        for tpos, found in zip(positions, rows, strict=True)
        if found
    ]


async def tenant_jobs(
    client: Any, keys: Keys, tenant_id: str
) -> list[tuple[JobInfo, int | None, int, bytes]]:
    """The tenant's jobs with their enqueued event's tenant position as enqueue_seq (and
    that position), their stored versions and states, in enqueue order."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.of(tenant_id, "jobs"))
        pipe.hgetall(keys.of(tenant_id, "e"))
        pipe.hgetall(keys.of(tenant_id, "v"))
        states, enqueued, versions = await pipe.execute()
    rows = []
    for raw_id, state in states.items():
        job_id = text(raw_id)
        job = stored_job(state, f"job {job_id!r} of {tenant_id!r}")
        tpos = enqueued.get(raw_id)
        if tpos is not None:
            job = msgspec.structs.replace(job, enqueue_seq=int(tpos))
        version = int(versions.get(raw_id, 0))
        rows.append((job, None if tpos is None else int(tpos), version, bytes(state)))
    rows.sort(key=lambda row: row[0].enqueue_seq)
    return rows


async def log_positions(
    client: Any, keys: Keys, tenant_id: str, tpositions: list[int | None]
) -> list[int | None]:
    """The log positions of the tenant's events at these tenant positions (None where
    not numbered yet)."""
    runs = await client.zrange(keys.runs(tenant_id), 0, -1)
    starts: list[tuple[int, int, int]] = []
    for member in runs:
        first, pos, count = (int(x) for x in text(member).split(":"))
        starts.append((first, pos, count))
    starts.sort()

    firsts = [s[0] for s in starts]
    found: list[int | None] = []
    for tpos in tpositions:
        if tpos is None:
            found.append(None)
            continue
        index = bisect.bisect_right(firsts, tpos) - 1
        if index < 0 or tpos >= starts[index][0] + starts[index][2]:
            found.append(None)
        else:
            found.append(starts[index][1] + tpos - starts[index][0])
    return found
