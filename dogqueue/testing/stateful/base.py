"""The state machine's foundation: one backend, one fake clock, one model, one event
loop driven step by step, and the helpers every rule uses."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from datetime import UTC, timedelta
from typing import Any, ClassVar, TypeVar

from hypothesis.stateful import RuleBasedStateMachine

from dogqueue.backend.contract import Backend
from dogqueue.clock import FakeClock
from dogqueue.core.errors import JobAlreadyExists, JobNotFound, QueueError
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobPriority
from dogqueue.testing.factories import BackendFactory
from dogqueue.testing.model import QueueModel, Refusal
from dogqueue.testing.stateful.common import (
    CONFIG,
    REFUSALS,
    TENANTS,
    MessageSpec,
    close_loop,
    replace,
)
from dogqueue.testing.stateful.coverage import called

T = TypeVar("T")

called("Backend.open", "for every backend, again after close_and_reopen, and on a closed one")
called("Backend.close", "at every teardown and close_and_reopen; a closed backend refuses all")


class MachineBase(RuleBasedStateMachine):
    """Subclass with a `factory` (see `backend_state_machine`) to check a backend."""

    factory: ClassVar[BackendFactory]

    def __init__(self) -> None:
        super().__init__()
        # One loop driven step by step: asyncio.Runner.run would install and restore a
        # SIGINT handler on every call, which costs more than most backend calls.
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.model = QueueModel(
            base_backoff=CONFIG.base_retry_backoff,
            max_backoff=CONFIG.max_retry_backoff,
            clock=self.clock,
        )
        self.owner: dict[str, str] = {}
        self.seen_seq = 0
        self.backend: Backend = self.factory(clock=self.clock, config=CONFIG)
        self.run(self.backend.open())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run one backend call on this state machine's event loop."""
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.backend.close())
            self.discard(self.backend)
        finally:
            close_loop(self.loop)

    def discard(self, backend: Backend) -> None:
        """Remove the storage of a backend the factory made, where it has a hook."""
        discard = getattr(self.factory, "discard", None)
        if discard is not None:
            discard(backend)

    def expect_refusal(self, coroutine: Coroutine[Any, Any, Any], refusal: Refusal) -> None:
        """The call must raise the error `refusal` names (checks on the appended events
        happen in the invariant)."""
        expected = REFUSALS[refusal.kind]
        try:
            outcome = self.run(coroutine)
        except QueueError as error:
            assert isinstance(error, expected), (
                f"expected {expected.__name__} ({refusal.kind}), got {error!r}"
            )
            if refusal.kind == "transition":
                assert not isinstance(error, JobNotFound), f"unexpected {error!r}"
            if refusal.kind == "exists":
                assert isinstance(error, JobAlreadyExists)
                assert error.job_id == refusal.job_id, (
                    f"JobAlreadyExists names {error.job_id!r}, the key belongs to"
                    f" {refusal.job_id!r}"
                )
            return
        raise AssertionError(
            f"call succeeded with {outcome!r}; expected {expected.__name__} ({refusal.kind})"
        )

    def other_tenant(self, tenant: str) -> str:
        return TENANTS[1] if tenant == TENANTS[0] else TENANTS[0]

    def message(self, spec: MessageSpec | tuple[Any, ...]) -> JobMessage:
        """The message a drawn spec describes, its run_at relative to the clock."""
        spec = MessageSpec(*spec)
        run_at = None if spec.run_in is None else self.clock() + timedelta(seconds=spec.run_in)
        return JobMessage(
            job_type=spec.job_type,
            payload_bytes=spec.payload,
            queue=spec.queue,
            priority=JobPriority(spec.priority),
            max_retries=spec.max_retries,
            run_at=run_at,
            idempotency_key=spec.key,
            codec=spec.codec,
        )

    def record_enqueued(
        self, tenant: str, job_id: str, message: JobMessage, batch: Sequence[str] = ()
    ) -> None:
        """Tell the model of a job the backend accepted; `batch` holds the ids of the
        call's jobs, for `after_earlier`."""
        self.owner[job_id] = tenant
        run_at = message.run_at if message.run_at is not None else self.clock()
        parents = message.after + tuple(batch[i] for i in message.after_earlier)
        # Stored with its parents resolved and its run_at given (in UTC).
        stored = replace(message, after=parents, after_earlier=(), run_at=run_at.astimezone(UTC))
        self.model.enqueue(
            tenant,
            job_id,
            queue=message.queue,
            priority=int(message.priority),
            max_retries=message.max_retries,
            key=message.idempotency_key,
            run_at=run_at,
            message=stored,
            at=self.clock(),
        )
        if parents:
            job = self.model.job(tenant, job_id)
            assert job is not None
            self.model.wait_for(job, parents, message.on_parent_failure == "run")

    def adopt_retry_times(self) -> None:
        """Read the jittered run_at the backend chose for each retried job, check it lies
        in the documented window (invariant 11), and adopt it."""
        for job in self.model.jobs.values():
            if job.run_at_window is None:
                continue
            info = self.run(self.backend.get_job(QueueCtx(job.tenant), job.job_id))
            earliest, latest = job.run_at_window
            assert earliest <= info.run_at <= latest, (
                f"retry of {job.job_id} at {info.run_at}, outside [{earliest}, {latest}]"
            )
            assert latest - self.clock() <= CONFIG.max_retry_backoff, "retry beyond the cap"
            self.model.adopt_run_at(job, info.run_at)
