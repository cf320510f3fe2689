"""Deliberately broken backends, each breaking one promise. The property suite must
catch every one of them (properties/test_mutants.py): a suite that passes a broken
backend is a defect."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from dogqueue.backend.contract import Backend
from dogqueue.backend.memory import MemoryBackend, MemoryStore
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.clock import Clock
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import JobNotFound
from dogqueue.core.events import Completed
from dogqueue.core.job import JobInfo, LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.engine import Reads, Transaction, Unit, lease_of
from dogqueue.testing.factories import JITTER_SEED, SqliteFactory

_replace = msgspec.structs.replace


class CanceledCanComplete(MemoryBackend):
    """ack_complete on a canceled job writes `completed` over the cancel."""

    async def ack_complete(
        self, ctx: QueueCtx, lease: LeasedJob, result: bytes | None = None
    ) -> None:
        if not isinstance(lease, LeasedJob):
            return await super().ack_complete(ctx, lease, result)
        job = await self.get_job(ctx, lease.job_id)
        if job.status is not JobStatus.CANCELED:
            return await super().ack_complete(ctx, lease, result)

        def overwrite(tx: Transaction, now: datetime) -> None:
            event = Completed(
                tenant_id=job.tenant_id,
                job_id=job.job_id,
                version=job.version + 1,
                at=now,
                token=lease.lease_token,
                result=result,
            )
            tx.append(event)
            done = _replace(
                job,
                status=JobStatus.COMPLETED,
                result=result,
                version=job.version + 1,
                finished_at=now,
                updated_at=now,
            )
            tx.save(job, done)

        await self.run_unit(Unit(Reads(), overwrite))


class StaleTokenAccepted(MemoryBackend):
    """Fencing broken: any token of a leased job is taken to be the current one."""

    async def _fresh(self, ctx: QueueCtx, lease: LeasedJob) -> LeasedJob:
        if not isinstance(lease, LeasedJob):
            return lease
        try:
            job = await self.get_job(ctx, lease.job_id)
        except JobNotFound:
            return lease
        if job.status is JobStatus.LEASED:
            return _replace(lease, lease_token=job.lease_token)
        return lease

    async def ack_complete(
        self, ctx: QueueCtx, lease: LeasedJob, result: bytes | None = None
    ) -> None:
        await super().ack_complete(ctx, await self._fresh(ctx, lease), result)

    async def ack_fail(
        self, ctx: QueueCtx, lease: LeasedJob, error: str, *, retry: bool = True
    ) -> JobStatus:
        return await super().ack_fail(ctx, await self._fresh(ctx, lease), error, retry=retry)

    async def heartbeat(
        self,
        ctx: QueueCtx,
        lease: LeasedJob,
        *,
        lease_duration: timedelta | None = None,
        progress: float | None = None,
        progress_message: str | None = None,
    ) -> LeasedJob:
        fresh = await self._fresh(ctx, lease)
        return await super().heartbeat(
            ctx,
            fresh,
            lease_duration=lease_duration,
            progress=progress,
            progress_message=progress_message,
        )


class LeasedJobLeasedAgain(MemoryBackend):
    """When nothing is ready, dequeue hands out a job that is still validly leased."""

    async def dequeue(
        self, ctx: QueueCtx, queues: Sequence[str], *, lease_duration: timedelta | None = None
    ) -> LeasedJob | None:
        lease = await super().dequeue(ctx, queues, lease_duration=lease_duration)
        if lease is not None:
            return lease
        now = self.now()
        for job in (await self.projected_jobs()).values():
            if (
                job.tenant_id == ctx.tenant_id
                and job.status is JobStatus.LEASED
                and job.message.queue in queues
                and job.lease_expires_at is not None
                and now < job.lease_expires_at
            ):
                return lease_of(job)
        return None


class TenantLeak(MemoryBackend):
    """get_job and cancel_job find another tenant's job by its id."""

    async def _owner(self, job_id: str) -> str | None:
        for tenant_id, other_id in await self.projected_jobs():
            if other_id == job_id:
                return tenant_id
        return None

    async def get_job(self, ctx: QueueCtx, job_id: str) -> JobInfo:
        try:
            return await super().get_job(ctx, job_id)
        except JobNotFound:
            owner = await self._owner(job_id)
            if owner is None:
                raise
            return await super().get_job(QueueCtx(owner), job_id)

    async def cancel_job(
        self, ctx: QueueCtx, job_id: str, *, actor: str | None = None
    ) -> JobStatus:
        try:
            return await super().cancel_job(ctx, job_id, actor=actor)
        except JobNotFound:
            owner = await self._owner(job_id)
            if owner is None:
                raise
            return await super().cancel_job(QueueCtx(owner), job_id, actor=actor)


class _PriorityBlindStore(MemoryStore):
    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        ready = [
            job
            for job in self.jobs.values()
            if job.tenant_id == tenant_id
            and job.status is JobStatus.ENQUEUED
            and job.message.queue in queues
            and job.run_at <= now
        ]
        return min(ready, key=lambda job: (job.run_at, job.enqueue_seq), default=None)


class PriorityIgnored(MemoryBackend):
    """dequeue takes the earliest due job whatever its priority."""

    def __init__(self, *, config: QueueConfig | None = None, clock: Clock | None = None) -> None:
        super().__init__(config=config, clock=clock, draw=random.Random(JITTER_SEED).random)
        self._store = _PriorityBlindStore()


class ForgetfulSqlite(SqliteBackend):
    """Loses the newest event of the log (and rebuilds the projection) when opened."""

    async def _open(self) -> None:
        await super()._open()

        def forget(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)")

        await self.writer.call(forget)
        await self._rebuild_projections()


class MiscountingSqlite(SqliteBackend):
    """Counts a job twice in the status counts when it is canceled (a derived table
    that drifts from the rows it counts). The triggers are stored in the file: the
    counts are written by the checkpoint's connection, not the writer's."""

    async def _open(self) -> None:
        await super()._open()

        def miscount(conn: sqlite3.Connection) -> None:
            for when in ("UPDATE OF status", "INSERT"):
                name = "miscount_" + when.split()[0].lower()
                conn.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {when} ON jobs"
                    " WHEN NEW.status = 'canceled' BEGIN"
                    " INSERT INTO job_counts (tenant_id, status, jobs)"
                    " VALUES (NEW.tenant_id, 'canceled', 1)"
                    " ON CONFLICT (tenant_id, status) DO UPDATE SET jobs = jobs + 1; END"
                )

        await self.writer.call(miscount)


class MemoryMutantFactory:
    """Makes backends of one broken MemoryBackend subclass."""

    def __init__(self, mutant: type[MemoryBackend]) -> None:
        self.mutant = mutant

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        return self.mutant(clock=clock, config=config, draw=random.Random(JITTER_SEED).random)

    def __repr__(self) -> str:
        return f"MemoryMutantFactory({self.mutant.__name__})"


class PriorityIgnoredFactory:
    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        return PriorityIgnored(clock=clock, config=config)


class ForgetfulSqliteFactory(SqliteFactory):
    """Correct SQLite backends, except that a reopened one lost its newest event."""

    def reopen(self, backend: Backend) -> Backend:
        assert isinstance(backend, SqliteBackend)
        return ForgetfulSqlite(
            backend.path,
            clock=backend.clock,
            config=backend.config,
            draw=random.Random(JITTER_SEED).random,
        )


class MiscountingSqliteFactory(SqliteFactory):
    """SQLite backends whose status counts drift when a job is canceled."""

    def _open_at(self, path: Path, clock: Clock, config: QueueConfig) -> SqliteBackend:
        return MiscountingSqlite(
            path, clock=clock, config=config, draw=random.Random(JITTER_SEED).random
        )


MUTANTS = {
    "canceled job can complete": MemoryMutantFactory(CanceledCanComplete),
    "stale token accepted": MemoryMutantFactory(StaleTokenAccepted),
    "leased job leased again": MemoryMutantFactory(LeasedJobLeasedAgain),
    "job leaks across tenants": MemoryMutantFactory(TenantLeak),
    "event lost on reopen": ForgetfulSqliteFactory(),
    "priority ignored": PriorityIgnoredFactory(),
    "status counts drift": MiscountingSqliteFactory(),
}

#: For `--dogqueue-backend=properties.mutants:PRIORITY_IGNORED` (test_readme.py).
PRIORITY_IGNORED = MUTANTS["priority ignored"]
