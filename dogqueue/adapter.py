"""QueueAdapter: typed jobs in, encoded messages to a backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from dogqueue.backend.contract import Backend
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import InvalidInput, InvalidJobType
from dogqueue.core.job import JobInfo
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobPriority, JobStatus
from dogqueue.jobs import JSON_CODEC, ContextT, Job, JobRegistry, encode_json
from dogqueue.observability import tracing
from dogqueue.observability.reader import Observability

R = TypeVar("R")


class QueueAdapter(Generic[ContextT]):
    """The typed front of a backend: register job classes, enqueue job objects."""

    def __init__(self, backend: Backend, config: QueueConfig | None = None) -> None:
        if config is not None:
            if not isinstance(config, QueueConfig):
                raise InvalidInput("config", "must be a QueueConfig")
            backend.config = config
        self._backend = backend
        self._registry: JobRegistry[ContextT] = JobRegistry()
        self._observability: Observability | None = None

    @classmethod
    def with_config(cls, backend: Backend, config: QueueConfig) -> QueueAdapter[ContextT]:
        """An adapter whose `config` also governs `backend`."""
        return cls(backend, config)

    @property
    def backend(self) -> Backend:
        """The storage backend."""
        return self._backend

    @property
    def config(self) -> QueueConfig:
        """The settings in force (the backend's)."""
        return self._backend.config

    @property
    def observability(self) -> Observability:
        """Metrics folded from this queue's log: `await adapter.observability.metrics()`."""
        if self._observability is None:
            self._observability = Observability(self._backend)
        return self._observability

    @property
    def job_registry(self) -> JobRegistry[ContextT]:
        """The registered job classes."""
        return self._registry

    async def register_job(self, job_class: type[Job[Any, Any]]) -> None:
        """Make `job_class` known for enqueueing and executing."""
        self._registry.register(job_class)

    def message_for(
        self,
        job: Job[Any, Any],
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        priority: JobPriority | None = None,
        max_retries: int | None = None,
    ) -> JobMessage:
        """The message that enqueueing `job` with these options stores."""
        job_type = getattr(type(job), "JOB_TYPE", None)
        if not isinstance(job, Job) or not isinstance(job_type, str):
            raise InvalidInput("job", "must be an instance of a Job subclass with a JOB_TYPE")
        if self._registry.job_class(job_type) is not type(job):
            raise InvalidJobType(job_type)
        return JobMessage(
            job_type=job_type,
            payload_bytes=encode_json(job),
            codec=JSON_CODEC,
            queue="default" if queue is None else queue,
            priority=type(job).PRIORITY if priority is None else priority,
            max_retries=type(job).MAX_RETRIES if max_retries is None else max_retries,
            run_at=run_at,
            idempotency_key=idempotency_key,
        )

    async def enqueue(
        self,
        ctx: QueueCtx,
        job: Job[Any, Any],
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        priority: JobPriority | None = None,
        max_retries: int | None = None,
    ) -> str:
        """Enqueue a registered job object; return the new job id."""
        message = self.message_for(
            job,
            queue=queue,
            run_at=run_at,
            idempotency_key=idempotency_key,
            priority=priority,
            max_retries=max_retries,
        )
        if tracing.OTEL_AVAILABLE:
            return await tracing.traced_enqueue(self._backend, ctx, message)
        return await self._backend.enqueue(ctx, message)

    async def enqueue_many(self, ctx: QueueCtx, jobs: list[Job[Any, Any]]) -> list[str]:
        """Enqueue registered job objects with their class defaults, all or none."""
        return await self._backend.enqueue_many(ctx, [self.message_for(job) for job in jobs])

    async def get_job(self, ctx: QueueCtx, job_id: str) -> JobInfo:
        """The job's current state."""
        return await self._backend.get_job(ctx, job_id)

    async def get_status(self, ctx: QueueCtx, job_id: str) -> JobStatus:
        """The job's current status."""
        return await self._backend.get_status(ctx, job_id)

    async def cancel_job(self, ctx: QueueCtx, job_id: str) -> JobStatus:
        """Cancel the job unless it is terminal; return its status afterwards."""
        return await self._backend.cancel_job(ctx, job_id)

    async def retry_job(
        self, ctx: QueueCtx, job_id: str, *, include_canceled: bool = False
    ) -> JobStatus:
        """Put a FAILED (or, with the flag, CANCELED) job back to ENQUEUED."""
        return await self._backend.retry_job(ctx, job_id, include_canceled=include_canceled)

    async def get_result(self, ctx: QueueCtx, job_id: str, result_type: type[R]) -> R | None:
        """A completed job's result decoded as `result_type`; None when it has none."""
        info = await self._backend.get_job(ctx, job_id)
        if info.status is not JobStatus.COMPLETED:
            raise InvalidInput("job_id", f"job {job_id!r} is {info.status}, not completed")
        if info.result is None:
            return None
        return msgspec.json.decode(info.result, type=result_type)
