"""The Redis backend: each tenant's log and projection on one shard, shared by
processes on any number of hosts.

Writes are batched per process (group commit) and split by tenant: for each tenant, one
script call reads everything the batch's units declared (jobs, keys, ready jobs,
expired leases, dependents), the unchanged units of work run on an in-memory working
set, and one more script call appends their events and applies their projection
changes after checking that every job they wrote still has the version they read
(compare-versions-and-append). A refused flush writes nothing; the batch is then re-run
unit by unit on fresh state, so conflicts never reach the caller. A sequencer gives the
appended events their log positions and chain links afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from dogqueue.backend.base import EngineBackend
from dogqueue.backend.browse import ProjectionBrowser
from dogqueue.backend.kit.batching import GroupCommit, storage_errors_from
from dogqueue.backend.kit.batchset import BatchReads, UndeclaredRead
from dogqueue.backend.kit.rows import from_micros, to_micros
from dogqueue.backend.kit.strictview import strictly
from dogqueue.backend.redis import presence, sequencer
from dogqueue.backend.redis.connect import DRIVER_ERRORS, connect
from dogqueue.backend.redis.durability import check_durability, check_server, server_persistence
from dogqueue.backend.redis.keys import Keys, check_prefix
from dogqueue.backend.redis.log import RedisLog, read_history
from dogqueue.backend.redis.scripts import register
from dogqueue.backend.redis.sequencer import seal_step, text, unpack_head
from dogqueue.backend.redis.workingset import (
    TenantBatch,
    declared_keys,
    queue_wants,
    read_keys,
    unit_tenant,
)
from dogqueue.clock import Clock
from dogqueue.core.codec import decode_job
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import prefix_end
from dogqueue.core.errors import BackendClosed, InvalidInput, QueueError, StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.engine import RefusedAfterWrite, T, Unit, run_units

logger = logging.getLogger("dogqueue.redis")

#: Most units of work in one batch.
MAX_BATCH = 256
#: Times a lone unit is re-run after losing a race before the error is raised.
MAX_RETRIES = 50
#: Expired leases reclaimed per tenant per batch at most.
RECLAIM_LIMIT = 1_000
#: How often this process runs a sequencer step for the tenants it wrote.
SEAL_INTERVAL = 0.1
#: How often a step walks every tenant (numbering what a stopped writer left).
FULL_SEAL_INTERVAL = 2.0
#: How long a read waits for this object's own events to get positions.
SEAL_WAIT = 10.0
#: Flushed events kept per tenant for the sequencer at most.
KNOWN_LIMIT = 100_000


class Conflict(Exception):
    """A flush found a job moved, or a key taken, since its batch read them."""


class RedisBackend(EngineBackend):
    """A backend on a Redis server (or a Redis Cluster), shared by processes on any
    number of hosts.

    `url` is a `redis://`, `rediss://` or `unix://` URL; `prefix` starts every key, so
    one server can hold several queues. With no `clock`, leases and schedules use the
    server's clock (`TIME`). `durability` is what the server must keep (checked at open,
    see `dogqueue.backend.redis.durability.check_server`): "persistent" (the default: an
    append-only file or snapshots), "always" (`appendfsync always`) or "none"."""

    def __init__(
        self,
        url: str,
        *,
        config: QueueConfig | None = None,
        clock: Clock | None = None,
        prefix: str = "dogqueue",
        audit_key: bytes | None = None,
        durability: str = "persistent",
        cluster: bool = False,
        draw: Callable[[], float] | None = None,
        listen: bool = True,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(config=config, clock=clock, draw=draw, audit_key=audit_key)
        if not isinstance(url, str) or not url:
            raise InvalidInput("url", "must be a redis://, rediss:// or unix:// URL")
        self.url = url
        self.prefix = check_prefix(prefix)
        self.durability = check_durability(durability)
        self.cluster = bool(cluster)
        self.listen = bool(listen)
        self.poll_interval = float(poll_interval)
        self.keys = Keys(self.prefix)
        self._server_clock = clock is None
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._group: GroupCommit[Unit[Any]] = GroupCommit(
            self._run_tenants, max_batch=MAX_BATCH, public=_public
        )
        self._sealer: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self._seal_lock = asyncio.Lock()
        self._registered: set[str] = set()
        #: Each tenant's highest tenant position this object wrote (reads wait for it).
        self._written: dict[str, int] = {}
        #: The events this object flushed and no step numbered yet (see sequencer.Known).
        self._known: sequencer.Known = {}
        self._origin = uuid.uuid4().hex
        #: Batches committed, units they held, and flushes refused by a guard.
        self.commits = self.units = self.conflicts = 0

    @property
    def client(self) -> Any:
        """The redis-py client (open backends only)."""
        if self._client is None:
            raise StorageError("backend is not open")
        return self._client

    # -- lifecycle ---------------------------------------------------------------------

    async def _open(self) -> None:
        self._client = connect(self.url, cluster=self.cluster)
        try:
            await self._client.ping()
            settings = await server_persistence(self._client)
            check_server(settings, self.durability, self.url.split("@")[-1])
            self._scripts = register(self._client)
            if self.listen:
                self._pubsub = self._client.pubsub()
                await self._pubsub.subscribe(self.keys.ready_channel, self.keys.cancel_channel)
        except BaseException as error:
            await self._close()
            if isinstance(error, DRIVER_ERRORS):
                raise StorageError(f"cannot open Redis queue {self.prefix!r}: {error}") from error
            raise
        loop = asyncio.get_running_loop()
        self._sealer = loop.create_task(self._seal_forever())
        if self._pubsub is not None:
            self._listener = loop.create_task(self._listen())

    async def _close(self) -> None:
        await self._group.close()
        tasks = {task for task in (self._sealer, self._listener) if task is not None}
        for task in tasks:
            task.cancel()
        if tasks:  # a driver call may swallow the cancellation once: do not wait for ever
            await asyncio.wait(tasks, timeout=2.0)
        if self._client is not None and self._written:
            with contextlib.suppress(QueueError, *DRIVER_ERRORS):  # readers number the rest
                await self._seal_now(wait=False)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self._client = self._pubsub = self._sealer = self._listener = None

    # -- writes: group commit, split by tenant -----------------------------------------

    def _submit(self, unit: Unit[T]) -> asyncio.Future[T]:
        if self._closed:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            future.set_exception(BackendClosed("backend is closed"))
            return future
        return self._group.submit(unit)

    async def _run_tenants(self, units: list[Unit[Any]]) -> list[Any]:
        """Run a batch as one sub-batch per tenant (each on its tenant's shard), the
        tenants concurrently; each unit's result in the batch's order."""
        groups: dict[str | None, list[int]] = {}
        for index, unit in enumerate(units):
            groups.setdefault(unit_tenant(unit.reads), []).append(index)
        results: list[Any] = [None] * len(units)

        async def run(tenant: str | None, indexes: list[int]) -> None:
            if tenant is None:
                found: list[Any] = [UndeclaredRead("a unit of work named no tenant")] * len(indexes)
            else:
                found = await self._run_batch(tenant, [units[i] for i in indexes])
            for index, result in zip(indexes, found, strict=True):
                results[index] = result

        await asyncio.gather(*(run(tenant, indexes) for tenant, indexes in groups.items()))
        return results

    async def _run_batch(self, tenant: str, units: list[Unit[Any]]) -> list[Any]:
        attempts = 0
        while True:
            try:
                results, ws = await self._run_units(tenant, units)
            except Conflict as error:
                self.conflicts += 1
                if len(units) > 1:  # re-run each alone, so one race costs one unit
                    return [(await self._run_batch(tenant, [unit]))[0] for unit in units]
                attempts += 1
                if attempts > MAX_RETRIES:
                    return [StorageError(f"gave up after {attempts} conflicts: {error}")]
                await asyncio.sleep(0.001 * attempts * random.random())
            except RefusedAfterWrite as error:
                if len(units) > 1:
                    return [(await self._run_batch(tenant, [unit]))[0] for unit in units]
                return [_public(error)]
            except DRIVER_ERRORS as error:
                # The flush may or may not have run: never re-run (an enqueue would be
                # doubled); the callers get StorageError and decide.
                return [_public(error)] * len(units)
            else:
                self.commits += 1
                self.units += len(units)
                self._after_commit(ws)
                return results

    async def _run_units(
        self, tenant: str, units: list[Unit[Any]]
    ) -> tuple[list[Any], TenantBatch]:
        """Read what the units declared, run them on a working set, flush their writes
        in one guarded script call (Conflict if a guard failed: nothing was written)."""
        declared = BatchReads()
        for unit in units:
            declared.add(unit.reads)
        _check_one_tenant(tenant, declared)
        if tenant not in self._registered:
            await self.client.sadd(self.keys.tenants, tenant)
            self._registered.add(tenant)
        log_key = self.keys.tenant_log(tenant)
        tag = self.keys.tag(tenant)
        reply = await self._scripts["read"](
            keys=[log_key, *declared_keys(tag, read_keys(declared))],
            args=self._read_args(tag, declared),
        )
        now_us, last_fifo, loads, found_keys, latest, ready, expired, closure = reply
        first_fifo = int(last_fifo) - declared.new_jobs + 1
        ws = TenantBatch(tenant, list(range(first_fifo, int(last_fifo) + 1)))
        for rows in (loads, ready, expired):
            for i in range(0, len(rows), 3):
                ws.seed(decode_job(rows[i + 1]), int(rows[i + 2]))
        for i in range(0, len(found_keys), 2):
            ws.seed_key(tenant, text(found_keys[i]), text(found_keys[i + 1]))
        for i in range(0, len(latest), 3):
            ws.seed_key(tenant, text(latest[i + 1]), text(latest[i + 2]))
        roots = [
            *declared.dependents,
            *((tenant, text(expired[i])) for i in range(0, len(expired), 3)),
        ]
        ws.seed_closure(
            roots,
            [
                (tenant, text(closure[i]), text(closure[i + 1]), closure[i + 2], closure[i + 3])
                for i in range(0, len(closure), 4)
            ],
        )
        results = run_units(ws, [strictly(unit) for unit in units], from_micros(int(now_us)))
        if ws.journal or ws.before:
            # The flush itself wakes other hosts: no round trip of this process between.
            ready = self.listen and ws.became_ready()
            notify = (self.keys.ready_channel, self._origin) if ready else None
            flushed = await self._scripts["flush"](
                keys=[log_key, *declared_keys(tag, ws.flush_keys())],
                args=ws.flush_args(tag, notify),
            )
            if text(flushed[0]) != "ok":
                raise Conflict(f"{text(flushed[1])}: {text(flushed[2])}")
            if int(flushed[2]):
                self._written[tenant] = max(self._written.get(tenant, 0), int(flushed[2]))
                self._remember(tenant, int(flushed[1]), int(flushed[3]), ws)
        return results, ws

    def _remember(self, tenant: str, first: int, committed: int, ws: TenantBatch) -> None:
        """Keep the flushed events for the sequencer, which then need not read them back
        (a bounded cache: past its size, steps read them)."""
        known = self._known.setdefault(tenant, {})
        if len(known) > KNOWN_LIMIT:
            known.clear()
        for offset, entry in enumerate(ws.journal):
            known[first + offset] = (committed, entry[5])

    def _read_args(self, tag: str, declared: BatchReads) -> list[Any]:
        now = "" if self._server_clock else to_micros(self.now())
        wants = queue_wants(declared)
        return [
            tag,
            now,
            declared.new_jobs,
            len(declared.jobs),
            *sorted(job for _, job in declared.jobs),
            len(declared.keys),
            *sorted(key for _, key in declared.keys),
            len(declared.key_prefixes),
            *(x for _, p in sorted(declared.key_prefixes) for x in (p, prefix_end(p))),
            len(wants),
            *(x for queue, n in sorted(wants.items()) for x in (queue, n)),
            RECLAIM_LIMIT if declared.expired else 0,
            len(declared.dependents),
            *sorted(job for _, job in declared.dependents),
        ]

    def _after_commit(self, ws: TenantBatch) -> None:
        if ws.became_ready():  # other hosts were told by the flush
            self._notify_change()

    async def reap_expired(self) -> int:
        """Expire every lease, across tenants, whose time has come; return how many.
        Each tenant's leases are expired in a unit of their own (on its shard)."""
        await self._ready()
        tenants = await self._tenants()
        counts = await asyncio.gather(
            *(self._submit(self._engine.reclaim_unit(tenant)) for tenant in tenants)
        )
        reaped = sum(counts)
        if reaped:
            self._notify_change()
        return reaped

    async def _tenants(self) -> list[str]:
        try:
            return sorted(text(t) for t in await self.client.smembers(self.keys.tenants))
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error

    # -- cross-host wake-ups and cancels (pub/sub: a lost message only delays) ---------

    def _announce_cancel(self, tenant_id: str, job_id: str) -> None:
        super()._announce_cancel(tenant_id, job_id)
        if self.listen:
            payload = f"{self._origin}\t{tenant_id}\t{job_id}"
            self._spawn(self._publish(self.keys.cancel_channel, payload))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._orphan_releases.add(task)
        task.add_done_callback(self._orphan_releases.discard)

    async def _publish(self, channel: str, payload: str) -> None:
        with contextlib.suppress(Exception):
            await self.client.publish(channel, payload)

    async def _listen(self) -> None:
        ready, cancel = self.keys.ready_channel, self.keys.cancel_channel
        while not self._closed:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # a lost connection: the poll covers the gap
                await asyncio.sleep(self.poll_interval)
                with contextlib.suppress(Exception):
                    await self._pubsub.subscribe(ready, cancel)
                continue
            if message is None:
                continue
            channel, data = text(message["channel"]), text(message["data"])
            origin, _, rest = data.partition("\t")
            if origin == self._origin:
                continue
            if channel == ready:
                self._notify_change()
            elif channel == cancel:
                tenant_id, _, job_id = rest.partition("\t")
                if job_id:
                    super()._announce_cancel(tenant_id, job_id)

    async def wait_for_change(self, max_wait: float) -> None:
        """Return soon after a job may have become leasable here or on another host, or
        after at most `poll_interval` seconds, or `max_wait`."""
        await self._ready()
        await super().wait_for_change(min(max_wait, self.poll_interval))

    # -- positions ---------------------------------------------------------------------

    async def seal(self) -> int:
        """Number every event of the tenants this object wrote (every writer's, not
        only this object's); return how many events this call numbered."""
        await self._ready()
        return await self._seal_now()

    async def _seal_now(self, *, wait: bool = True, every_tenant: bool = False) -> int:
        total = 0
        deadline = asyncio.get_running_loop().time() + SEAL_WAIT
        async with self._seal_lock:
            while True:
                tenants = None if every_tenant else sorted(self._written)
                if tenants == []:
                    return total
                count = await seal_step(
                    self.client,
                    self.keys,
                    self._scripts["seal"],
                    self.audit_key,
                    tenants,
                    self._known,
                )
                total += count or 0
                if not wait:
                    return total
                # A full step, or one another process overtook, may have left other
                # writers' events behind: step again until one reaches the end.
                reached_end = count is not None and count < sequencer.STEP_LIMIT
                if reached_end and await self._own_sealed():
                    return total
                if asyncio.get_running_loop().time() > deadline:
                    return total  # another process holds the sequencer: read a prefix
                if not count:
                    await asyncio.sleep(0.002)

    async def _own_sealed(self) -> bool:
        tenants = sorted(self._written)
        if not tenants:
            return True
        heads = await self.client.hmget(self.keys.heads, tenants)
        return all(
            unpack_head(head)[0] >= self._written[t] for t, head in zip(tenants, heads, strict=True)
        )

    async def _seal_forever(self) -> None:
        loop = asyncio.get_running_loop()
        last_full = loop.time()
        while not self._closed:
            await asyncio.sleep(SEAL_INTERVAL)
            full = loop.time() - last_full > FULL_SEAL_INTERVAL
            with contextlib.suppress(Exception):
                if full or self._written:
                    await self._seal_now(wait=False, every_tenant=full)
            if full:
                last_full = loop.time()

    async def _seal_all(self) -> int:
        """Number what every writer left, then this object's own events."""
        await self._ready()
        try:
            return await self._seal_now(every_tenant=True) + await self._seal_now()
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error

    def log_reader(self, *, wait_for_own_writes: bool = True) -> RedisLog:
        """The stored log, read-only. While this backend is open, reads first number
        every tenant's new events (with `wait_for_own_writes`, until this object's own
        have positions), so they see its writes."""
        if self._client is None or self._closed:
            return RedisLog(url=self.url, prefix=self.prefix, cluster=self.cluster)
        if not wait_for_own_writes:
            return RedisLog(self._client, prefix=self.prefix, before_read=self._seal_step)
        return RedisLog(self._client, prefix=self.prefix, before_read=self._seal_all)

    def browser(self) -> ProjectionBrowser:
        """The dashboard's read model: the projection of every tenant (every shard),
        read whole on each call (a Redis read model of its own is still to come)."""
        return ProjectionBrowser(self)

    async def _seal_step(self) -> int:
        await self._ready()
        try:
            return await self._seal_now(wait=False, every_tenant=True)
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error

    async def _announce_worker(
        self, worker_id: str, last_seen: datetime, data: bytes, forget_before: datetime
    ) -> None:
        await presence.announce_worker(
            self.client, self.keys, worker_id, last_seen, data, forget_before
        )

    async def _read_workers(self, seen_since: datetime) -> list[bytes]:
        return await presence.read_workers(self.client, self.keys, seen_since)

    # -- reads -------------------------------------------------------------------------

    async def _read_job(self, tenant_id: str, job_id: str) -> JobInfo | None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hget(self.keys.of(tenant_id, "jobs"), job_id)
                pipe.hget(self.keys.of(tenant_id, "e"), job_id)
                state, tpos = await pipe.execute()
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error
        if state is None:
            return None
        job = decode_job(state)
        if tpos is not None:
            job = msgspec.structs.replace(job, enqueue_seq=int(tpos))
        return job

    async def _latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        try:
            found = await self.client.zrange(
                self.keys.of(tenant_id, "cron"),
                "(" + prefix_end(prefix),
                "[" + prefix,
                bylex=True,
                desc=True,
                offset=0,
                num=1,
            )
            if not found:
                return None
            job_id = await self.client.hget(self.keys.of(tenant_id, "k"), found[0])
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error
        return (text(found[0]), text(job_id)) if job_id is not None else None

    async def _read_history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        try:
            return await read_history(self.client, self.keys, tenant_id, job_id)
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error

    async def _peek(self, tenant: str, mode: str, now_us: int, queues: tuple[str, ...]) -> Any:
        return await self._scripts["peek"](
            keys=[self.keys.tenant_log(tenant)], args=[self.keys.tag(tenant), mode, now_us, *queues]
        )

    async def _ready_tenants(self, queues: tuple[str, ...], now: datetime) -> list[str]:
        tenants = await self._tenants()
        try:
            found = await asyncio.gather(
                *(self._peek(t, "ready", to_micros(now), queues) for t in tenants)
            )
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error
        return [t for t, ready in zip(tenants, found, strict=True) if int(ready)]

    async def _next_run_at(
        self, queues: tuple[str, ...], tenant_ids: tuple[str, ...] | None
    ) -> datetime | None:
        tenants = list(tenant_ids) if tenant_ids is not None else await self._tenants()
        try:
            found = await asyncio.gather(*(self._peek(t, "next", 0, queues) for t in tenants))
        except DRIVER_ERRORS as error:
            raise StorageError(f"Redis: {error}") from error
        times = [int(float(text(value))) for value in found if value is not None]
        return from_micros(min(times)) if times else None

    async def _read_events(self, after_seq: int, limit: int | None) -> list[AnyEvent]:
        return await self.log_reader().events(after=after_seq, limit=limit)

    async def _projected_jobs(self) -> dict[JobKey, JobInfo]:
        jobs = await self.log_reader().jobs()
        return {(job.tenant_id, job.job_id): job for job in jobs}

    async def _rebuild_projections(self) -> int:
        """Replace each tenant's projection with the fold of its log (stop writers
        first: each tenant is rewritten in one transaction, not all at once)."""
        from dogqueue.backend.redis.rebuild import rebuild_tenant

        total = 0
        for tenant in await self._tenants():
            total += await rebuild_tenant(self.client, self.keys, tenant)
        return total


def _check_one_tenant(tenant: str, declared: BatchReads) -> None:
    """Refuse a batch whose units read another tenant than `tenant` (a dogqueue bug:
    each unit reads one tenant, whose keys are all on one shard)."""
    named: set[str | None] = set(declared.expired)
    for pairs in (declared.jobs, declared.keys, declared.key_prefixes, declared.dependents):
        named |= {t for t, _ in pairs}
    named |= {t for t, _ in declared.ready}
    if named - {tenant}:
        raise UndeclaredRead(f"a batch of {tenant!r} reads {sorted(map(str, named - {tenant}))}")


_public = storage_errors_from("Redis", DRIVER_ERRORS)


def default_url() -> str:
    """The URL of the local test server unless DOGQUEUE_REDIS_URL says otherwise."""
    return os.environ.get("DOGQUEUE_REDIS_URL", "redis://127.0.0.1:6379/0")


def default_cluster() -> bool:
    """Whether the test server is a Redis Cluster (DOGQUEUE_REDIS_CLUSTER=1)."""
    return os.environ.get("DOGQUEUE_REDIS_CLUSTER", "") in ("1", "yes", "true")
