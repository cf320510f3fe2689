"""The hook a worker wraps around each execution: a span, and start/finish log lines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dogqueue.backend.contract import Backend
from dogqueue.core.job import LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.observability.logging import log_job_finished, log_job_started
from dogqueue.observability.outcome import Outcome
from dogqueue.observability.tracing import ExecutionSpan, execution_span


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


@asynccontextmanager
async def observe_execution(
    backend: Backend, ctx: QueueCtx, lease: LeasedJob
) -> AsyncIterator[ExecutionObservation]:
    """Trace and log one execution of `lease`. Unless the block sets an outcome, it is
    "completed" on normal exit, "canceled" on cancellation and "failed" on an error."""
    started = time.perf_counter()  # log duration only; job semantics never read it
    log_job_started(lease)
    async with execution_span(backend, ctx, lease) as span:
        observation = ExecutionObservation(span)
        try:
            yield observation
        except asyncio.CancelledError:
            if observation.outcome is None:
                observation.set_outcome(Outcome.CANCELED)
            log_job_finished(
                lease, observation.outcome or Outcome.CANCELED, time.perf_counter() - started
            )
            raise
        except BaseException as error:
            if observation.outcome is None:
                observation.set_outcome(Outcome.FAILED, error)
            log_job_finished(
                lease, observation.outcome or Outcome.FAILED, time.perf_counter() - started, error
            )
            raise
        if observation.outcome is None:
            observation.set_outcome(Outcome.COMPLETED)
        log_job_finished(
            lease,
            observation.outcome or Outcome.COMPLETED,
            time.perf_counter() - started,
            observation.error,
        )
