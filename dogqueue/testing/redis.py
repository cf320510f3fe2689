"""The property suite's Redis factory: a fresh key prefix per run on the server at
$DOGQUEUE_REDIS_URL (default: the local one), with the reopen and crash hooks (the crash
runs a batch's reads and units, then stops before the flush)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

from dogqueue.backend.contract import Backend
from dogqueue.backend.redis import RedisBackend
from dogqueue.backend.redis.backend import default_cluster, default_url
from dogqueue.backend.redis.connect import connect
from dogqueue.clock import Clock
from dogqueue.core.config import QueueConfig
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.validation import prepare_enqueue
from dogqueue.engine import Reads, Transaction, Unit
from dogqueue.testing.factories import BuiltinFactory


class CrashBeforeFlush(Exception):
    """Raised by the crash hook's batch after its units ran, before the flush."""


class RedisFactory(BuiltinFactory):
    """Redis backends on the server at $DOGQUEUE_REDIS_URL (default: the local one; a
    cluster when $DOGQUEUE_REDIS_CLUSTER=1), each on a key prefix of its own.
    `durability` defaults to "none" so that a test server without persistence serves."""

    def __init__(
        self,
        url: str | None = None,
        durability: str = "none",
        cluster: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.url = url or default_url()
        self.durability = durability
        self.cluster = default_cluster() if cluster is None else cluster

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        return self._open_at(f"props{uuid.uuid4().hex[:16]}", clock, config)

    def _open_at(self, prefix: str, clock: Clock, config: QueueConfig) -> RedisBackend:
        options = {"durability": self.durability, "cluster": self.cluster}
        return RedisBackend(
            self.url,
            prefix=prefix,
            clock=clock,
            config=config,
            **{**options, **self._backend_options()},
        )

    def reopen(self, backend: Backend) -> Backend:
        """A new backend on the same prefix as `backend`."""
        assert isinstance(backend, RedisBackend)
        return self._open_at(backend.prefix, backend.clock, backend.config)

    async def crash_mid_transaction(self, backend: Backend) -> None:
        """Read and run real units of work (enqueue a job, cancel every leased job of
        its tenant), then never flush them: as a process that died between its read and
        its flush (the flush script is all or nothing, so no crash falls inside it)."""
        assert isinstance(backend, RedisBackend)
        await backend.open()
        engine = backend.engine
        message = JobMessage(job_type="doomed", payload_bytes=b"{}")
        enqueue = engine.enqueue_unit(prepare_enqueue(QueueCtx("acme"), (message,), engine.config))

        def crash(tx: Transaction, now: datetime) -> None:
            enqueue.run(tx, now)
            for job in tx.expired_leases("acme", now + timedelta(days=3650)):
                engine.cancel_unit(job.tenant_id, job.job_id).run(tx, now)
            raise CrashBeforeFlush("connection lost before the flush")

        try:
            await backend._run_units(
                "acme", [Unit(enqueue.reads | Reads(expired=("acme",)), crash)]
            )
        except CrashBeforeFlush:
            return
        raise AssertionError("the doomed batch was flushed")

    def discard(self, backend: Backend) -> None:
        """Delete every key of the backend's prefix."""
        assert isinstance(backend, RedisBackend)
        asyncio.run(drop_prefix(self.url, backend.prefix, cluster=self.cluster))

    def __repr__(self) -> str:
        return "RedisFactory()"


async def drop_prefix(url: str, prefix: str, *, cluster: bool | None = None) -> None:
    """Delete every key of the queues whose prefix starts with `prefix` (on every node
    of a cluster)."""
    client = connect(url, cluster=default_cluster() if cluster is None else cluster)
    try:
        keys = [key async for key in client.scan_iter(match="{" + prefix + "*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()
