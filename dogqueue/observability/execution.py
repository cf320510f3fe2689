"""The hook a worker wraps around each execution: a span, and start/finish log lines."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from dogqueue.backend.contract import Backend
from dogqueue.core.job import LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.observability.logging import log_job_finished, log_job_started
from dogqueue.observability.outcome import Outcome
from dogqueue.observability.tracing import ExecutionSpan, execution_span, tracing_active


class ExecutionObservation:
    """What the worker reports about one execution while it runs."""

    def __init__(self, span: ExecutionSpan) -> None:
        self._span = span
        self.error: BaseException | None = None

    @property
    def outcome(self) -> Outcome | None:
        """The outcome set so far, if any."""
        return self._span.outcome

    def set_outcome(self, outcome: Outcome, error: BaseException | None = None) -> None:
        """How the execution ended."""
        self._span.set_outcome(outcome)
        if error is not None:
            self.error = error
            if self._span.span is not None:
                self._span.span.record_exception(error)


def observe_execution(backend: Backend, ctx: QueueCtx, lease: LeasedJob) -> ExecutionScope:
    """Trace and log one execution of `lease` (`async with`, which gives the
    ExecutionObservation). Unless the block sets an outcome, it is "completed" on normal
    exit, "canceled" on cancellation and "failed" on an error."""
    return ExecutionScope(backend, ctx, lease)


class ExecutionScope:
    """The `async with` block of `observe_execution`. A plain class, not a generator:
    the worker enters one per job, and without a tracer it makes no span at all."""

    __slots__ = ("_backend", "_ctx", "_lease", "_observation", "_span_scope", "_started")

    def __init__(self, backend: Backend, ctx: QueueCtx, lease: LeasedJob) -> None:
        self._backend = backend
        self._ctx = ctx
        self._lease = lease
        self._started = 0.0
        self._span_scope: AbstractAsyncContextManager[ExecutionSpan] | None = None
        self._observation: ExecutionObservation | None = None

    async def __aenter__(self) -> ExecutionObservation:
        self._started = time.perf_counter()  # log duration only; job semantics never read it
        log_job_started(self._lease)
        if tracing_active():
            self._span_scope = execution_span(self._backend, self._ctx, self._lease)
            span = await self._span_scope.__aenter__()
        else:
            span = ExecutionSpan(None)
        self._observation = ExecutionObservation(span)
        return self._observation

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        observation = self._observation
        assert observation is not None
        lease, elapsed = self._lease, time.perf_counter() - self._started
        if exc is None:
            if observation.outcome is None:
                observation.set_outcome(Outcome.COMPLETED)
            outcome = observation.outcome or Outcome.COMPLETED
            log_job_finished(lease, outcome, elapsed, observation.error)
        elif isinstance(exc, asyncio.CancelledError):
            if observation.outcome is None:
                observation.set_outcome(Outcome.CANCELED)
            log_job_finished(lease, observation.outcome or Outcome.CANCELED, elapsed)
        else:
            if observation.outcome is None:
                observation.set_outcome(Outcome.FAILED, exc)
            log_job_finished(lease, observation.outcome or Outcome.FAILED, elapsed, exc)
        if self._span_scope is not None:
            return await self._span_scope.__aexit__(exc_type, exc, tb)
        return None
