"""A thread-safe, blocking front of an adapter for code with no event loop (Django,
Flask, scripts): its calls run on an event loop of its own, in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from dogqueue.client.adapter import QueueAdapter
from dogqueue.client.results import JobHandle
from dogqueue.client.run import call_on_loop
from dogqueue.core.errors import BackendClosed, InvalidInput
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.jobs import BaseJob, ContextT
from dogqueue.workflow import Step

R = TypeVar("R")
T = TypeVar("T")
#: What the adapter factory of a BlockingQueue returns.
AdapterOrCoroutine = QueueAdapter[ContextT] | Coroutine[Any, Any, QueueAdapter[ContextT]]


class BlockingQueue(Generic[ContextT]):
    """Enqueue and wait from any thread without an event loop.

    `make_adapter()` builds the adapter (and its backend) on the queue's own loop, so
    every storage call runs on that loop whichever thread asks; it may be async. Close
    it (or use `with`) to close the backend and stop the thread."""

    def __init__(
        self,
        make_adapter: Callable[[], AdapterOrCoroutine[ContextT]],
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dogqueue-blocking", daemon=True
        )
        self._thread.start()
        self._closed = False
        self._lock = threading.Lock()

        async def build() -> QueueAdapter[ContextT]:
            made = make_adapter()
            adapter = await made if asyncio.iscoroutine(made) else made
            if not isinstance(adapter, QueueAdapter):
                raise InvalidInput("make_adapter", "must return a QueueAdapter")
            await adapter.backend.open()
            return adapter

        try:
            self.adapter: QueueAdapter[ContextT] = self._call(build())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise BackendClosed("the BlockingQueue is closed")
        return call_on_loop(
            self._loop, coroutine, "thread", "call BlockingQueue methods from outside its loop"
        )

    def enqueue(self, ctx: QueueCtx, job: BaseJob[Any, R], **options: Any) -> JobHandle[R]:
        """`QueueAdapter.enqueue`, blocking until the job is stored."""
        return self._call(self.adapter.enqueue(ctx, job, **options))

    def enqueue_many(self, ctx: QueueCtx, jobs: list[BaseJob[Any, R]]) -> list[JobHandle[R]]:
        """`QueueAdapter.enqueue_many`, blocking."""
        return self._call(self.adapter.enqueue_many(ctx, jobs))

    def enqueue_chain(
        self,
        ctx: QueueCtx,
        steps: Sequence[BaseJob[Any, Any] | Step[Any]],
        *,
        after: Sequence[str] = (),
    ) -> list[JobHandle[Any]]:
        """`QueueAdapter.enqueue_chain`, blocking: each step after the previous one."""
        return self._call(self.adapter.enqueue_chain(ctx, steps, after=after))

    def enqueue_group(
        self,
        ctx: QueueCtx,
        steps: Sequence[BaseJob[Any, Any] | Step[Any]],
        *,
        after: Sequence[str] = (),
    ) -> list[JobHandle[Any]]:
        """`QueueAdapter.enqueue_group`, blocking: the steps side by side."""
        return self._call(self.adapter.enqueue_group(ctx, steps, after=after))

    def enqueue_chord(
        self,
        ctx: QueueCtx,
        steps: Sequence[BaseJob[Any, Any] | Step[Any]],
        then: BaseJob[Any, R] | Step[R],
        *,
        after: Sequence[str] = (),
    ) -> tuple[list[JobHandle[Any]], JobHandle[R]]:
        """`QueueAdapter.enqueue_chord`, blocking: `then` after every step."""
        return self._call(self.adapter.enqueue_chord(ctx, steps, then, after=after))

    def cancel_workflow(self, ctx: QueueCtx, job_id: str) -> list[str]:
        """`QueueAdapter.cancel_workflow`, blocking: the job and every job after it."""
        return self._call(self.adapter.cancel_workflow(ctx, job_id))

    def wait_result(
        self, ctx: QueueCtx, handle: JobHandle[R], *, timeout: float | timedelta | None = None
    ) -> R:
        """`QueueAdapter.wait_result`, blocking this thread only."""
        return self._call(self.adapter.wait_result(ctx, handle, timeout=timeout))

    def get_job(self, ctx: QueueCtx, job_id: str) -> JobInfo:
        """`QueueAdapter.get_job`, blocking."""
        return self._call(self.adapter.get_job(ctx, job_id))

    def cancel_job(self, ctx: QueueCtx, job_id: str) -> JobStatus:
        """`QueueAdapter.cancel_job`, blocking."""
        return self._call(self.adapter.cancel_job(ctx, job_id))

    def close(self) -> None:
        """Close the backend and stop the background loop; idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                self._call(self.adapter.backend.close())
            finally:
                self._closed = True
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
