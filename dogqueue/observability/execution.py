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
    """What the worker reports about one execution while it runs (`span` is None when
    not tracing)."""

    __slots__ = ("_outcome", "_span", "error", "reason")

    def __init__(self, span: ExecutionSpan | None = None) -> None:
        self._span = span
        self._outcome: Outcome | None = None
        self.error: BaseException | None = None
        #: Why the job was stopped or given back (for the outcome's log line).
        self.reason: str | None = None

    @property
    def outcome(self) -> Outcome | None:
        """The outcome set so far, if any."""
        return self._outcome if self._span is None else self._span.outcome

    def set_outcome(
        self, outcome: Outcome, error: BaseException | None = None, reason: str | None = None
    ) -> None:
        """How the execution ended: the outcome, the job's error, and why it was
        stopped (text that holds no payload data)."""
        if reason is not None:
            self.reason = reason
        if self._span is None:
            self._outcome = outcome
        else:
            self._span.set_outcome(outcome)
        if error is not None:
            self.error = error
            if self._span is not None and self._span.span is not None:
                self._span.span.record_exception(error)


def observe_execution(
    backend: Backend, ctx: QueueCtx, lease: LeasedJob, *, error_text: bool = True
) -> ExecutionScope:
    """Trace and log one execution of `lease` (`async with`, which gives the
    ExecutionObservation): a start line and one line for its outcome. Unless the block
    sets an outcome, it is "completed" on normal exit, "canceled" on cancellation and
    "failed" on an error. `error_text=False` logs an error's type only."""
    return ExecutionScope(backend, ctx, lease, error_text)


class ExecutionScope(ExecutionObservation):
    """The `async with` block of `observe_execution`, and the observation it gives. A
    plain class, not a generator, and one object: the worker enters one per job, and
    without a tracer it makes no span at all."""

    __slots__ = ("_backend", "_ctx", "_error_text", "_lease", "_span_scope", "_started")

    def __init__(
        self, backend: Backend, ctx: QueueCtx, lease: LeasedJob, error_text: bool = True
    ) -> None:
        super().__init__(None)
        self._backend = backend
        self._error_text = error_text
        self._ctx = ctx
        self._lease = lease
        self._started = 0.0
        self._span_scope: AbstractAsyncContextManager[ExecutionSpan] | None = None

    async def __aenter__(self) -> ExecutionObservation:
        self._started = time.perf_counter()  # log duration only; job semantics never read it
        log_job_started(self._lease)
        if tracing_active():
            self._span_scope = execution_span(self._backend, self._ctx, self._lease)
            self._span = await self._span_scope.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        elapsed = time.perf_counter() - self._started
        if exc is None:
            if self.outcome is None:
                self.set_outcome(Outcome.COMPLETED)
            self._log(self.outcome or Outcome.COMPLETED, elapsed, self.error)
        elif isinstance(exc, asyncio.CancelledError):
            if self.outcome is None:
                self.set_outcome(Outcome.CANCELED)
            self._log(self.outcome or Outcome.CANCELED, elapsed, None)
        else:
            if self.outcome is None:
                self.set_outcome(Outcome.FAILED, exc)
            self._log(self.outcome or Outcome.FAILED, elapsed, exc)
        if self._span_scope is not None:
            return await self._span_scope.__aexit__(exc_type, exc, tb)
        return None

    def _log(self, outcome: Outcome, elapsed: float, error: BaseException | None) -> None:
        log_job_finished(
            self._lease, outcome, elapsed, error, reason=self.reason, error_text=self._error_text
        )
