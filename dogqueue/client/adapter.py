"""QueueAdapter: typed jobs in, encoded messages to a backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import msgspec

from dogqueue.backend.contract import Backend, TransactionalEnqueue
from dogqueue.client.functions import JobFunction
from dogqueue.client.results import (
    JobFailed,
    JobHandle,
    ResultTimeout,
    forget_waiter,
    job_settled,
    settled_waiter,
)
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import InvalidInput, InvalidJobType, JobCanceled
from dogqueue.core.job import JobInfo
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobPriority, JobStatus
from dogqueue.jobs import JSON_CODEC, BaseJob, ContextT, JobRegistry, encode_json, result_type_of
from dogqueue.observability import tracing
from dogqueue.observability.reader import Observability
from dogqueue.workflow import (
    ParentFailurePolicy,
    Step,
    as_step,
    check_parent_ids,
    parent_results,
)

R = TypeVar("R")

#: What registers: a job class or a function made a job by `dogqueue.job`.
AnyJob = type[BaseJob[Any, Any]] | JobFunction[Any, Any, Any]

#: The longest `wait_result` sleeps between two reads when nothing wakes it: changes in
#: another process are seen through `wait_for_change`, this only bounds a missed wake-up.
RESULT_RECHECK_SECONDS = 1.0


class QueueAdapter(Generic[ContextT]):
    """The typed front of a backend: register job classes, enqueue job objects.

    `jobs` is the application's JobRegistry (shared: jobs registered in it later are
    known too) or a list of job classes and function jobs to register."""

    def __init__(
        self,
        backend: Backend,
        config: QueueConfig | None = None,
        *,
        jobs: JobRegistry[ContextT] | Iterable[AnyJob] | None = None,
    ) -> None:
        if config is not None and not isinstance(config, QueueConfig):
            raise InvalidInput("config", "must be a QueueConfig")
        self._backend = backend
        # The adapter's own settings; the backend (shared by other adapters) is left
        # as it is. None: whatever the backend's settings are when read.
        self._config = config
        self._registry: JobRegistry[ContextT] = (
            jobs if isinstance(jobs, JobRegistry) else _registry_of(jobs or ())
        )
        self._observability: Observability | None = None

    @classmethod
    def with_config(cls, backend: Backend, config: QueueConfig) -> QueueAdapter[ContextT]:
        """The same as `QueueAdapter(backend, config)`."""
        return cls(backend, config)

    @property
    def backend(self) -> Backend:
        """The storage backend."""
        return self._backend

    @property
    def config(self) -> QueueConfig:
        """The settings this adapter and its workers use for leases, heartbeats and the
        reaper: the one given, else the backend's. The backend's own decisions (retry
        backoff, payload limit, default lease of a bare `dequeue`) follow the backend's
        settings, which an adapter never changes."""
        return self._backend.config if self._config is None else self._config

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

    async def register_job(self, job_class: AnyJob) -> None:
        """Make `job_class` (or a function made a job by `dogqueue.job`) known for
        enqueueing and executing."""
        self._registry.register(_class_of(job_class))

    def message_for(
        self,
        job: BaseJob[Any, Any],
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        priority: JobPriority | None = None,
        max_retries: int | None = None,
        after: Sequence[str] = (),
        on_parent_failure: ParentFailurePolicy = "cancel",
    ) -> JobMessage:
        """The message that enqueueing `job` with these options stores."""
        job_type = getattr(type(job), "JOB_TYPE", None)
        if not isinstance(job, BaseJob) or not isinstance(job_type, str):
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
            after=check_parent_ids(after),
            on_parent_failure=on_parent_failure,
        )

    async def enqueue(
        self,
        ctx: QueueCtx,
        job: BaseJob[Any, R],
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        priority: JobPriority | None = None,
        max_retries: int | None = None,
        after: Sequence[str] = (),
        on_parent_failure: ParentFailurePolicy = "cancel",
    ) -> JobHandle[R]:
        """Enqueue a registered job object; return its handle (a str: the new job id,
        typed with the class's result for `wait_result`).

        With `after` (ids of the tenant's jobs) the job is WAITING until every one of
        them has completed, then ENQUEUED (at `run_at` if that is later). If one of
        them fails or is canceled the job is canceled too, unless `on_parent_failure`
        is "run": then it runs once all of them have ended."""
        message = self.message_for(
            job,
            queue=queue,
            run_at=run_at,
            idempotency_key=idempotency_key,
            priority=priority,
            max_retries=max_retries,
            after=after,
            on_parent_failure=on_parent_failure,
        )
        if tracing.OTEL_AVAILABLE:
            job_id = await tracing.traced_enqueue(self._backend, ctx, message)
        else:
            job_id = await self._backend.enqueue(ctx, message)
        return JobHandle(job_id, message.job_type)

    async def enqueue_in_transaction(
        self,
        connection: object,
        ctx: QueueCtx,
        job: BaseJob[Any, R],
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        priority: JobPriority | None = None,
        max_retries: int | None = None,
        after: Sequence[str] = (),
        on_parent_failure: ParentFailurePolicy = "cancel",
    ) -> JobHandle[R]:
        """Enqueue like `enqueue`, inside the application's own open transaction on the
        queue's database: the job exists if and only if that transaction commits, and
        workers see it after the commit.

        `connection`: on PostgreSQL an asyncpg Connection, a psycopg 3 AsyncConnection or
        a SQLAlchemy AsyncConnection (asyncpg or psycopg driver); on SQLite a `sqlite3`
        connection to the queue's file. InvalidInput naming `connection` for another kind
        or database, a connection outside a transaction, or a backend without it."""
        message = self.message_for(
            job,
            queue=queue,
            run_at=run_at,
            idempotency_key=idempotency_key,
            priority=priority,
            max_retries=max_retries,
            after=after,
            on_parent_failure=on_parent_failure,
        )
        if not isinstance(self._backend, TransactionalEnqueue):
            raise InvalidInput(
                "connection", f"{type(self._backend).__name__} has no transactional enqueue"
            )
        with tracing.enqueue_span(ctx, message) as traced:
            job_id = await self._backend.enqueue_in_transaction(
                connection, ctx, message, trace_context=traced.trace_context
            )
            traced.set_job_id(job_id)
        return JobHandle(job_id, message.job_type)

    async def enqueue_many(self, ctx: QueueCtx, jobs: list[BaseJob[Any, R]]) -> list[JobHandle[R]]:
        """Enqueue registered job objects with their class defaults, all or none."""
        messages = [self.message_for(job) for job in jobs]
        ids = await self._backend.enqueue_many(ctx, messages)
        return [JobHandle(i, m.job_type) for i, m in zip(ids, messages, strict=True)]

    def _step_message(
        self, item: BaseJob[Any, Any] | Step[Any], after: tuple[str, ...], earlier: tuple[int, ...]
    ) -> JobMessage:
        step = as_step(item)
        message = self.message_for(
            step.job,
            queue=step.queue,
            run_at=step.run_at,
            idempotency_key=step.idempotency_key,
            priority=step.priority,
            max_retries=step.max_retries,
            after=after,
            on_parent_failure=step.on_parent_failure,
        )
        return msgspec.structs.replace(message, after_earlier=earlier)

    async def _enqueue_steps(
        self, ctx: QueueCtx, messages: list[JobMessage]
    ) -> list[JobHandle[Any]]:
        ids = await self._backend.enqueue_many(ctx, messages)
        return [JobHandle(i, m.job_type) for i, m in zip(ids, messages, strict=True)]

    async def enqueue_chain(
        self,
        ctx: QueueCtx,
        steps: Sequence[BaseJob[Any, Any] | Step[Any]],
        *,
        after: Sequence[str] = (),
    ) -> list[JobHandle[Any]]:
        """Enqueue jobs that run one after another (each after the one before it; the
        first after `after`), all or none; return their handles in order."""
        parents = check_parent_ids(after)
        messages = [
            self._step_message(step, parents if i == 0 else (), () if i == 0 else (i - 1,))
            for i, step in enumerate(_steps(steps))
        ]
        return await self._enqueue_steps(ctx, messages)

    async def enqueue_group(
        self,
        ctx: QueueCtx,
        steps: Sequence[BaseJob[Any, Any] | Step[Any]],
        *,
        after: Sequence[str] = (),
    ) -> list[JobHandle[Any]]:
        """Enqueue jobs that may run side by side (a fan-out, each after `after`), all
        or none; return their handles in order."""
        parents = check_parent_ids(after)
        messages = [self._step_message(step, parents, ()) for step in _steps(steps)]
        return await self._enqueue_steps(ctx, messages)

    async def enqueue_chord(
        self,
        ctx: QueueCtx,
        steps: Sequence[BaseJob[Any, Any] | Step[Any]],
        then: BaseJob[Any, R] | Step[R],
        *,
        after: Sequence[str] = (),
    ) -> tuple[list[JobHandle[Any]], JobHandle[R]]:
        """Enqueue a group and one job that runs after all of it (a fan-in), all or
        none; return the group's handles and the fan-in job's."""
        parents = check_parent_ids(after)
        group = [self._step_message(step, parents, ()) for step in _steps(steps)]
        last = self._step_message(then, (), tuple(range(len(group))))
        handles = await self._enqueue_steps(ctx, [*group, last])
        return handles[:-1], JobHandle(handles[-1], last.job_type)

    async def cancel_workflow(self, ctx: QueueCtx, job_id: str) -> list[str]:
        """Cancel the job and every job that depends on it, directly or through
        others, in one transaction; return the ids of the jobs this canceled."""
        canceled = await self._backend.cancel_workflow(ctx, job_id)
        if canceled:
            job_settled(self._backend)
        return canceled

    async def parent_results(
        self, ctx: QueueCtx, job_id: str, result_type: type[R]
    ) -> dict[str, R | None]:
        """The results of the job's completed parents (its `after`), decoded as
        `result_type`, by parent id in `after` order."""
        info = await self._backend.get_job(ctx, job_id)
        parents = [await self._backend.get_job(ctx, parent) for parent in info.message.after]
        return parent_results(parents, result_type)

    async def get_job(self, ctx: QueueCtx, job_id: str) -> JobInfo:
        """The job's current state."""
        return await self._backend.get_job(ctx, job_id)

    async def handle(self, ctx: QueueCtx, job_id: str) -> JobHandle[Any]:
        """The handle of a job known only by its id (one that came back in a URL), for
        `wait_result`; JobNotFound if the tenant has no such job."""
        info = await self._backend.get_job(ctx, job_id)
        return JobHandle(info.job_id, info.message.job_type)

    async def get_status(self, ctx: QueueCtx, job_id: str) -> JobStatus:
        """The job's current status."""
        return await self._backend.get_status(ctx, job_id)

    async def cancel_job(self, ctx: QueueCtx, job_id: str) -> JobStatus:
        """Cancel the job unless it is terminal; return its status afterwards."""
        status = await self._backend.cancel_job(ctx, job_id)
        job_settled(self._backend)
        return status

    async def retry_job(
        self, ctx: QueueCtx, job_id: str, *, include_canceled: bool = False
    ) -> JobStatus:
        """Put a FAILED (or, with the flag, CANCELED) job back to ENQUEUED."""
        return await self._backend.retry_job(ctx, job_id, include_canceled=include_canceled)

    async def get_result(self, ctx: QueueCtx, job_id: str, result_type: type[R]) -> R | None:
        """A completed job's result decoded as `result_type`; None when it has none."""
        info = await self._backend.get_job(ctx, job_id)
        if info.status is not JobStatus.COMPLETED:
            raise InvalidInput("job_id", f"job {str(job_id)!r} is {info.status}, not completed")
        if info.result is None:
            return None
        return msgspec.json.decode(info.result, type=result_type)

    async def wait_result(
        self,
        ctx: QueueCtx,
        handle: JobHandle[R],
        *,
        timeout: float | timedelta | None = None,  # noqa: ASYNC109 (a deadline, not a cancel scope)
    ) -> R:
        """Wait until the job is terminal and return its result, decoded as the type its
        class's `execute` declares. Raises JobFailed (failed for good), JobCanceled
        (canceled), or ResultTimeout after `timeout` seconds (None: wait for ever).

        It wakes when a job finishes in this process, and otherwise on the backend's
        change notifications (`wait_for_change`), never by polling in a tight loop."""
        if not isinstance(handle, JobHandle):
            raise InvalidInput("handle", "must be the JobHandle that enqueue returned")
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        if seconds is not None and (isinstance(seconds, bool) or seconds < 0):
            raise InvalidInput("timeout", "must be a non-negative number of seconds or None")
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while True:
            # Registered before reading, so a finish between the read and the wait wakes it.
            settled = settled_waiter(self._backend)
            try:
                info = await self._backend.get_job(ctx, handle)
                if info.status is JobStatus.COMPLETED:
                    return self._decode_result(handle, info.result)
                if info.status is JobStatus.FAILED:
                    raise JobFailed(handle, info.last_error)
                if info.status is JobStatus.CANCELED:
                    raise JobCanceled(handle)
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise ResultTimeout(handle, str(info.status))
                wait = (
                    RESULT_RECHECK_SECONDS
                    if remaining is None
                    else min(remaining, RESULT_RECHECK_SECONDS)
                )
                change = loop.create_task(self._backend.wait_for_change(wait))
                try:
                    await asyncio.wait({change, settled}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    change.cancel()
                    await asyncio.gather(change, return_exceptions=True)
            finally:
                forget_waiter(self._backend, settled)

    def _decode_result(self, handle: JobHandle[R], result: bytes | None) -> R:
        declared = Any
        if handle.job_type in self._registry:
            declared = result_type_of(self._registry.job_class(handle.job_type))
        if result is None:
            return None  # type: ignore[return-value]  # a job that declares None
        decoded: R = msgspec.json.decode(result, type=declared)  # type: ignore[assignment]
        return decoded


def _class_of(job: AnyJob) -> type[BaseJob[Any, Any]]:
    return job.job_class if isinstance(job, JobFunction) else job


def _registry_of(jobs: Iterable[AnyJob]) -> JobRegistry[Any]:
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Iterable):
        raise InvalidInput("jobs", "must be a JobRegistry or a list of jobs")
    registry: JobRegistry[Any] = JobRegistry()
    for job in jobs:
        registry.register(_class_of(job))
    return registry


def _steps(steps: object) -> list[BaseJob[Any, Any] | Step[Any]]:
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise InvalidInput("steps", "must be a list of jobs or Steps")
    if not steps:
        raise InvalidInput("steps", "must not be empty")
    return list(steps)
