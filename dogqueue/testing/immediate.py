"""Immediate mode for the simplest tests: every enqueue returns after the jobs it made
due have run to an outcome, through a real Worker and the log as always."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from dogqueue.backend.contract import Backend
from dogqueue.client.adapter import AnyJob, QueueAdapter
from dogqueue.client.results import JobHandle
from dogqueue.clock import FakeClock
from dogqueue.core.config import QueueConfig
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.jobs import BaseJob, ContextT, JobRegistry
from dogqueue.testing.runner import run_until_idle

R = TypeVar("R")


class ImmediateAdapter(QueueAdapter[ContextT]):
    """A QueueAdapter whose enqueues (one job, many, a chain, group or chord) and
    retries return only after the jobs that became due have run, with `context`:
    the job, the jobs that waited on it, and its retries (on a FakeClock the clock
    moves to each retry). A job enqueued for later (`run_at`) waits for
    `run_until_idle`, as it would in production.

    For tests only: a real application enqueues and lets its workers run the jobs."""

    def __init__(
        self,
        backend: Backend,
        config: QueueConfig | None = None,
        *,
        jobs: JobRegistry[ContextT] | list[AnyJob] | None = None,
        context: Any = None,
    ) -> None:
        super().__init__(backend, config, jobs=jobs)
        self.context = context
        self._running = False

    async def enqueue(self, ctx: QueueCtx, job: BaseJob[Any, R], **options: Any) -> JobHandle[R]:
        handle = await super().enqueue(ctx, job, **options)
        await self.run_due()
        return handle

    async def enqueue_many(self, ctx: QueueCtx, jobs: list[BaseJob[Any, R]]) -> list[JobHandle[R]]:
        handles = await super().enqueue_many(ctx, jobs)
        await self.run_due()
        return handles

    async def _enqueue_steps(
        self, ctx: QueueCtx, messages: list[JobMessage]
    ) -> list[JobHandle[Any]]:
        handles = await super()._enqueue_steps(ctx, messages)
        await self.run_due()
        return handles

    async def retry_job(
        self, ctx: QueueCtx, job_id: str, *, include_canceled: bool = False
    ) -> JobStatus:
        await super().retry_job(ctx, job_id, include_canceled=include_canceled)
        await self.run_due()
        return await self.get_status(ctx, job_id)

    async def run_due(self) -> None:
        """Run every due job, and the retries of failed attempts, until none is left.
        Called from inside a running job (an enqueue in a job), it returns at once:
        the run already going picks the new job up."""
        if self._running:
            return
        self._running = True
        try:
            while True:
                await run_until_idle(self, context=self.context)
                clock = self.backend.clock
                retry_at = await self._next_retry_at()
                if retry_at is None or not isinstance(clock, FakeClock):
                    return
                clock.set(max(retry_at, clock()))
        finally:
            self._running = False

    async def _next_retry_at(self) -> datetime | None:
        jobs = (await self.backend.projected_jobs()).values()
        retries = [j.run_at for j in jobs if j.status is JobStatus.ENQUEUED and j.attempts > 0]
        return min(retries, default=None)
