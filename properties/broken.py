"""Broken backends made systematically from any correct one, by wrapping it through the
`Backend` contract only (no concrete class is touched, so the same families break a
PostgreSQL backend as well as the memory one).

Families, each one mutant per entry:

- swallow: for every contract method and every error it may raise (`RAISES`), a backend
  whose method catches that error and returns None;
- tenant leak: for every method that takes a job id or a lease, a backend that answers
  a `JobNotFound` by doing the call as the tenant that owns the job;
- stale token: for every lease method, a backend that swaps an old token for the job's
  current one before the call;
- reorder: `dequeue` and `dequeue_many` giving out jobs of equal priority in the wrong
  order;
- tick twice: `enqueue_ticks` enqueuing a schedule's tick that already has a job;
- batch: `settle_many` refusing a whole batch for one refused acknowledgement.

`settle_many` reports refusals per acknowledgement (in its result list), so its swallow,
tenant-leak and stale-token mutants work on each entry of a batch.

`broken_backends(factory)` returns a factory per mutant; `properties/test_broken_backends.py`
requires the CI profile to catch every one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import msgspec

from dogqueue.backend.browse import JobBrowser
from dogqueue.backend.contract import Backend
from dogqueue.clock import Clock
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import ScheduleSpec
from dogqueue.core.errors import (
    BackendClosed,
    InvalidInput,
    InvalidTransition,
    JobAlreadyExists,
    JobCanceled,
    JobNotFound,
    LeaseLost,
    QueueError,
)
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo, LeasedJob, Settlement
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.projection import JobKey
from dogqueue.core.status import JobStatus
from dogqueue.core.workers import WorkerPresence
from dogqueue.engine import T, Unit
from dogqueue.log.reader import LogReader
from dogqueue.testing.factories import BackendFactory, MemoryFactory, SqliteFactory

_LEASE_ERRORS = (InvalidInput, JobNotFound, LeaseLost, JobCanceled, BackendClosed)
_JOB_ID_ERRORS = (InvalidInput, JobNotFound, BackendClosed)

#: Every error each contract method may raise, StorageError aside (storage failing
#: cannot be provoked through the contract; tests/integration covers it per backend).
#: `properties/test_broken_backends.py` checks this against what a correct backend
#: raised during the suite.
RAISES: dict[str, tuple[type[QueueError], ...]] = {
    "open": (BackendClosed,),
    "enqueue": (InvalidInput, JobAlreadyExists, BackendClosed),
    "enqueue_many": (InvalidInput, JobAlreadyExists, BackendClosed),
    "dequeue": (InvalidInput, BackendClosed),
    "dequeue_many": (InvalidInput, BackendClosed),
    "heartbeat": _LEASE_ERRORS,
    "ack_complete": _LEASE_ERRORS,
    "ack_fail": _LEASE_ERRORS,
    "release": _LEASE_ERRORS,
    "settle_many": (InvalidInput, BackendClosed),
    "cancel_job": _JOB_ID_ERRORS,
    "cancel_workflow": _JOB_ID_ERRORS,
    "retry_job": (*_JOB_ID_ERRORS, InvalidTransition),
    "get_status": _JOB_ID_ERRORS,
    "get_job": _JOB_ID_ERRORS,
    "history": _JOB_ID_ERRORS,
    "reap_expired": (BackendClosed,),
    "ready_tenants": (InvalidInput, BackendClosed),
    "next_run_at": (InvalidInput, BackendClosed),
    "read_events": (BackendClosed,),
    "projected_jobs": (BackendClosed,),
    "rebuild_projections": (BackendClosed,),
    "enqueue_ticks": (InvalidInput, BackendClosed),
    "latest_tick": (InvalidInput, BackendClosed),
}
LEASE_METHODS = ("heartbeat", "ack_complete", "ack_fail", "release")
#: What `settle_many` reports, per acknowledgement, instead of raising.
SETTLE_REFUSALS: tuple[type[QueueError], ...] = (JobNotFound, LeaseLost, JobCanceled)
JOB_ID_METHODS = ("get_job", "get_status", "history", "cancel_job", "retry_job", "cancel_workflow")


class Forwarding:
    """A Backend that forwards every call to `inner`; mutants override one method.
    Run unchanged, it must pass the whole suite (test_broken_backends.py checks)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def config(self) -> QueueConfig:
        return self.inner.config

    @config.setter
    def config(self, value: QueueConfig) -> None:
        self.inner.config = value

    @property
    def clock(self) -> Clock:
        return self.inner.clock

    @clock.setter
    def clock(self, value: Clock) -> None:
        self.inner.clock = value

    async def run_unit(self, unit: Unit[T]) -> T:
        """The engine's seam (control events are appended through it), unperturbed."""
        return await self.inner.run_unit(unit)  # type: ignore[attr-defined,no-any-return]

    def notify_change(self) -> None:
        self.inner.notify_change()  # type: ignore[attr-defined]

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def enqueue(
        self, ctx: QueueCtx, message: JobMessage, *, trace_context: dict[str, str] | None = None
    ) -> str:
        return await self.inner.enqueue(ctx, message, trace_context=trace_context)

    async def enqueue_many(self, ctx: QueueCtx, messages: Sequence[JobMessage]) -> list[str]:
        return await self.inner.enqueue_many(ctx, messages)

    async def dequeue(
        self, ctx: QueueCtx, queues: Sequence[str], *, lease_duration: timedelta | None = None
    ) -> LeasedJob | None:
        return await self.inner.dequeue(ctx, queues, lease_duration=lease_duration)

    async def dequeue_many(
        self,
        ctx: QueueCtx,
        queues: Sequence[str],
        n: int,
        *,
        lease_duration: timedelta | None = None,
    ) -> list[LeasedJob]:
        return await self.inner.dequeue_many(ctx, queues, n, lease_duration=lease_duration)

    async def heartbeat(
        self,
        ctx: QueueCtx,
        lease: LeasedJob,
        *,
        lease_duration: timedelta | None = None,
        progress: float | None = None,
        progress_message: str | None = None,
    ) -> LeasedJob:
        return await self.inner.heartbeat(
            ctx,
            lease,
            lease_duration=lease_duration,
            progress=progress,
            progress_message=progress_message,
        )

    async def ack_complete(
        self, ctx: QueueCtx, lease: LeasedJob, result: bytes | None = None
    ) -> None:
        await self.inner.ack_complete(ctx, lease, result)

    async def ack_fail(
        self, ctx: QueueCtx, lease: LeasedJob, error: str, *, retry: bool = True
    ) -> JobStatus:
        return await self.inner.ack_fail(ctx, lease, error, retry=retry)

    async def release(
        self,
        ctx: QueueCtx,
        lease: LeasedJob,
        *,
        reason: str | None = None,
        until: datetime | None = None,
    ) -> None:
        await self.inner.release(ctx, lease, reason=reason, until=until)

    async def settle_many(
        self, ctx: QueueCtx, settlements: Sequence[Settlement]
    ) -> list[JobStatus | QueueError]:
        return await self.inner.settle_many(ctx, settlements)

    async def cancel_job(
        self, ctx: QueueCtx, job_id: str, *, actor: str | None = None
    ) -> JobStatus:
        return await self.inner.cancel_job(ctx, job_id, actor=actor)

    async def cancel_workflow(
        self, ctx: QueueCtx, job_id: str, *, actor: str | None = None
    ) -> list[str]:
        return await self.inner.cancel_workflow(ctx, job_id, actor=actor)

    async def retry_job(
        self,
        ctx: QueueCtx,
        job_id: str,
        *,
        include_canceled: bool = False,
        actor: str | None = None,
    ) -> JobStatus:
        return await self.inner.retry_job(
            ctx, job_id, include_canceled=include_canceled, actor=actor
        )

    def log_reader(self, *, wait_for_own_writes: bool = True) -> LogReader:
        return self.inner.log_reader(wait_for_own_writes=wait_for_own_writes)

    def browser(self) -> JobBrowser:
        return self.inner.browser()

    async def get_status(self, ctx: QueueCtx, job_id: str) -> JobStatus:
        return await self.inner.get_status(ctx, job_id)

    async def get_job(self, ctx: QueueCtx, job_id: str) -> JobInfo:
        return await self.inner.get_job(ctx, job_id)

    async def history(self, ctx: QueueCtx, job_id: str) -> list[AnyEvent]:
        return await self.inner.history(ctx, job_id)

    async def reap_expired(self) -> int:
        return await self.inner.reap_expired()

    async def ready_tenants(self, queues: Sequence[str]) -> list[str]:
        return await self.inner.ready_tenants(queues)

    async def next_run_at(
        self, queues: Sequence[str], tenant_ids: Sequence[str] | None = None
    ) -> datetime | None:
        return await self.inner.next_run_at(queues, tenant_ids)

    async def wait_for_change(self, max_wait: float) -> None:
        await self.inner.wait_for_change(max_wait)

    async def read_events(self, *, after_seq: int = 0, limit: int | None = None) -> list[AnyEvent]:
        return await self.inner.read_events(after_seq=after_seq, limit=limit)

    async def projected_jobs(self) -> dict[JobKey, JobInfo]:
        return await self.inner.projected_jobs()

    async def rebuild_projections(self) -> int:
        return await self.inner.rebuild_projections()

    async def announce_worker(self, presence: WorkerPresence) -> None:
        await self.inner.announce_worker(presence)

    async def read_workers(self, *, seen_since: datetime) -> list[WorkerPresence]:
        return await self.inner.read_workers(seen_since=seen_since)

    async def enqueue_ticks(
        self, ctx: QueueCtx, schedule: ScheduleSpec, now: datetime
    ) -> list[str]:
        return await self.inner.enqueue_ticks(ctx, schedule, now)

    async def latest_tick(self, ctx: QueueCtx, name: str) -> tuple[datetime, str] | None:
        return await self.inner.latest_tick(ctx, name)


Method = Callable[..., Awaitable[Any]]


def _mutant(name: str, method: str, body: Callable[[Forwarding, Method], Method]) -> type:
    """A Forwarding subclass whose `method` is `body(self, the forwarding method)`."""

    def broken(self: Forwarding, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        correct = getattr(super(cls, self), method)
        return body(self, correct)(*args, **kwargs)

    cls = type(name, (Forwarding,), {method: broken, "__doc__": f"{name}: breaks {method}."})
    return cls


def swallowing(method: str, error: type[QueueError]) -> type:
    """`method` catches `error` and returns None."""

    def body(self: Forwarding, correct: Method) -> Method:
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await correct(*args, **kwargs)
            except error:
                return None

        return call

    return _mutant(f"{_camel(method)}Swallows{error.__name__}", method, body)


async def _owner(backend: Forwarding, job_id: object) -> str | None:
    for tenant_id, other_id in await backend.inner.projected_jobs():
        if other_id == job_id:
            return tenant_id
    return None


def leaking(method: str) -> type:
    """`method` answers for another tenant's job: a JobNotFound is retried as the owner."""

    def body(self: Forwarding, correct: Method) -> Method:
        async def call(ctx: QueueCtx, target: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await correct(ctx, target, *args, **kwargs)
            except JobNotFound:
                job_id = target.job_id if isinstance(target, LeasedJob) else target
                owner = await _owner(self, job_id)
                if owner is None or owner == ctx.tenant_id:
                    raise
                return await correct(QueueCtx(owner), target, *args, **kwargs)

        return call

    return _mutant(f"{_camel(method)}LeaksAcrossTenants", method, body)


def stale_token_accepted(method: str) -> type:
    """`method` takes any token of a leased job for the current one."""

    def body(self: Forwarding, correct: Method) -> Method:
        async def call(ctx: QueueCtx, lease: LeasedJob, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(lease, LeasedJob):
                return await correct(ctx, lease, *args, **kwargs)
            try:
                job = await self.inner.get_job(ctx, lease.job_id)
            except QueueError:
                return await correct(ctx, lease, *args, **kwargs)
            if job.status is JobStatus.LEASED:
                lease = msgspec.structs.replace(lease, lease_token=job.lease_token)
            return await correct(ctx, lease, *args, **kwargs)

        return call

    return _mutant(f"{_camel(method)}AcceptsStaleToken", method, body)


Settle = Callable[[QueueCtx, Sequence[Settlement]], Awaitable[list[JobStatus | QueueError]]]


def _settle_mutant(name: str, doc: str, body: Callable[[Forwarding, Settle], Settle]) -> type:
    """A Forwarding subclass whose `settle_many` is `body(self, the correct one)`."""

    async def settle_many(
        self: Forwarding, ctx: QueueCtx, settlements: Sequence[Settlement]
    ) -> list[JobStatus | QueueError]:
        return await body(self, self.inner.settle_many)(ctx, settlements)

    return type(name, (Forwarding,), {"settle_many": settle_many, "__doc__": doc})


def settle_swallowing(error: type[QueueError]) -> type:
    """`settle_many` reports `error` for an acknowledgement as if it had settled it."""

    def body(self: Forwarding, correct: Settle) -> Settle:
        async def call(
            ctx: QueueCtx, settlements: Sequence[Settlement]
        ) -> list[JobStatus | QueueError]:
            results = await correct(ctx, settlements)
            return [
                JobStatus.COMPLETED if isinstance(result, error) else result for result in results
            ]

        return call

    name = f"SettleManySwallows{error.__name__}PerJob"
    return _settle_mutant(name, f"{name}: settle_many hides {error.__name__}.", body)


def _settle_leaking(self: Forwarding, correct: Settle) -> Settle:
    async def call(
        ctx: QueueCtx, settlements: Sequence[Settlement]
    ) -> list[JobStatus | QueueError]:
        results = await correct(ctx, settlements)
        for index, result in enumerate(results):
            if isinstance(result, JobNotFound):
                owner = await _owner(self, settlements[index].lease.job_id)
                if owner is not None and owner != ctx.tenant_id:
                    results[index] = (await correct(QueueCtx(owner), [settlements[index]]))[0]
        return results

    return call


def _settle_stale_tokens(self: Forwarding, correct: Settle) -> Settle:
    async def call(
        ctx: QueueCtx, settlements: Sequence[Settlement]
    ) -> list[JobStatus | QueueError]:
        current = []
        for item in settlements:
            try:
                job = await self.inner.get_job(ctx, item.lease.job_id)
            except QueueError:
                current.append(item)
                continue
            if job.status is JobStatus.LEASED:
                lease = msgspec.structs.replace(item.lease, lease_token=job.lease_token)
                item = msgspec.structs.replace(item, lease=lease)
            current.append(item)
        return await correct(ctx, current)

    return call


def _settle_all_or_nothing(self: Forwarding, correct: Settle) -> Settle:
    async def call(
        ctx: QueueCtx, settlements: Sequence[Settlement]
    ) -> list[JobStatus | QueueError]:
        results = await correct(ctx, settlements)
        for result in results:
            if isinstance(result, QueueError):
                raise result
        return results

    return call


#: `settle_many` broken per acknowledgement, beside the generated swallowers.
SETTLE_MUTANTS = [
    _settle_mutant(
        "SettleManyLeaksAcrossTenants",
        "settle_many settles another tenant's job as its owner.",
        _settle_leaking,
    ),
    _settle_mutant(
        "SettleManyAcceptsStaleToken",
        "settle_many takes any token of a leased job for the current one.",
        _settle_stale_tokens,
    ),
    _settle_mutant(
        "SettleManyRefusesTheWholeBatch",
        "settle_many raises the first refusal in a batch instead of reporting it.",
        _settle_all_or_nothing,
    ),
]


class DequeueReordersEqualPriorities(Forwarding):
    """dequeue hands out the second of two ready jobs of equal priority (giving the
    first back), so equal-priority jobs leave out of run_at/FIFO order."""

    async def dequeue(
        self, ctx: QueueCtx, queues: Sequence[str], *, lease_duration: timedelta | None = None
    ) -> LeasedJob | None:
        leases = await self.inner.dequeue_many(ctx, queues, 2, lease_duration=lease_duration)
        if len(leases) == 2 and leases[0].message.priority == leases[1].message.priority:
            await self.inner.release(ctx, leases[0])
            return leases[1]
        for extra in leases[1:]:
            await self.inner.release(ctx, extra)
        return leases[0] if leases else None


class DequeueManyReordersEqualPriorities(Forwarding):
    """dequeue_many returns the first two jobs swapped when their priorities are equal."""

    async def dequeue_many(
        self,
        ctx: QueueCtx,
        queues: Sequence[str],
        n: int,
        *,
        lease_duration: timedelta | None = None,
    ) -> list[LeasedJob]:
        leases = await self.inner.dequeue_many(ctx, queues, n, lease_duration=lease_duration)
        if len(leases) >= 2 and leases[0].message.priority == leases[1].message.priority:
            leases[0], leases[1] = leases[1], leases[0]
        return leases


class RewritesMessages(Forwarding):
    """Changes every enqueued message with `rewrite` before the correct store sees it."""

    @staticmethod
    def rewrite(message: JobMessage) -> JobMessage:
        return message

    async def enqueue(
        self, ctx: QueueCtx, message: JobMessage, *, trace_context: dict[str, str] | None = None
    ) -> str:
        return await self.inner.enqueue(ctx, self.rewrite(message), trace_context=trace_context)

    async def enqueue_many(self, ctx: QueueCtx, messages: Sequence[JobMessage]) -> list[str]:
        return await self.inner.enqueue_many(ctx, [self.rewrite(m) for m in messages])


class ReleasesChildEarly(RewritesMessages):
    """A job with several parents waits for all but the last one: it is released (and
    leased) while a parent has not completed."""

    @staticmethod
    def rewrite(message: JobMessage) -> JobMessage:
        if (
            not isinstance(message, JobMessage)
            or len(message.after) + len(message.after_earlier) < 2
        ):
            return message
        if message.after_earlier:
            return msgspec.structs.replace(message, after_earlier=message.after_earlier[:-1])
        return msgspec.structs.replace(message, after=message.after[:-1])


class RunsDependentOfFailedParent(RewritesMessages):
    """Every dependent runs once its parents have ended, even after one failed or was
    canceled (as if each had opted in)."""

    @staticmethod
    def rewrite(message: JobMessage) -> JobMessage:
        if not isinstance(message, JobMessage) or message.on_parent_failure != "cancel":
            return message
        return msgspec.structs.replace(message, on_parent_failure="run")


class EnqueueTicksRepeatsATick(Forwarding):
    """enqueue_ticks ignores the key of a tick that already has a job: called again with
    nothing due, it enqueues the schedule's newest tick once more (as a store whose key
    index missed the schedule's keys would; the copy goes in without the key, which the
    correct store underneath would refuse)."""

    async def enqueue_ticks(
        self, ctx: QueueCtx, schedule: ScheduleSpec, now: datetime
    ) -> list[str]:
        job_ids = await self.inner.enqueue_ticks(ctx, schedule, now)
        latest = await self.inner.latest_tick(ctx, schedule.name)
        if job_ids or latest is None:
            return job_ids
        again = msgspec.structs.replace(schedule.message, run_at=latest[0])
        return [await self.inner.enqueue(ctx, again)]


def recording(raised: set[tuple[str, type[QueueError]]]) -> type:
    """A correct Forwarding backend that adds (method, error type) to `raised` for every
    dogqueue error a contract method raises."""

    def wrap(method: str) -> Callable[..., Awaitable[Any]]:
        async def call(self: Forwarding, *args: Any, **kwargs: Any) -> Any:
            try:
                return await getattr(Forwarding, method)(self, *args, **kwargs)
            except QueueError as error:
                raised.add((method, type(error)))
                raise

        return call

    return type("Recording", (Forwarding,), {method: wrap(method) for method in RAISES})


def _camel(method: str) -> str:
    return "".join(part.title() for part in method.split("_"))


def family(name: str) -> str:
    """The family of the generated mutant called `name`."""
    if "Swallows" in name:
        return "swallow"
    if name.endswith("LeaksAcrossTenants"):
        return "tenant leak"
    if name.endswith("AcceptsStaleToken"):
        return "stale token"
    if name in ("ReleasesChildEarly", "RunsDependentOfFailedParent"):
        return "workflow"
    if name.startswith("EnqueueTicks"):
        return "tick twice"
    if name.endswith("WholeBatch"):
        return "batch"
    return "reorder"


def mutant_classes() -> dict[str, type]:
    """Every generated mutant, by a name saying what it breaks."""
    classes: list[type] = [
        swallowing(method, error) for method, errors in RAISES.items() for error in errors
    ]
    classes += [leaking(method) for method in (*JOB_ID_METHODS, *LEASE_METHODS)]
    classes += [stale_token_accepted(method) for method in LEASE_METHODS]
    classes += [settle_swallowing(error) for error in SETTLE_REFUSALS]
    classes += SETTLE_MUTANTS
    classes += [DequeueReordersEqualPriorities, DequeueManyReordersEqualPriorities]
    classes += [ReleasesChildEarly, RunsDependentOfFailedParent, EnqueueTicksRepeatsATick]
    return {cls.__name__: cls for cls in classes}


class WrappingFactory:
    """Makes `wrapper(backend)` for each backend `base` makes, keeping base's hooks
    (reopen wraps the reopened backend too)."""

    def __init__(self, base: BackendFactory, wrapper: Callable[[Backend], Forwarding]) -> None:
        self.base = base
        self.wrapper = wrapper
        if hasattr(base, "reopen"):
            self.reopen = self._reopen
        if hasattr(base, "crash_mid_transaction"):
            self.crash_mid_transaction = self._crash_mid_transaction
        if hasattr(base, "discard"):
            self.discard = self._discard

    def __call__(self, *, clock: Clock, config: QueueConfig) -> Backend:
        backend: Backend = self.wrapper(self.base(clock=clock, config=config))
        return backend

    def _reopen(self, backend: Backend) -> Backend:
        assert isinstance(backend, Forwarding)
        reopened: Backend = self.wrapper(self.base.reopen(backend.inner))  # type: ignore[attr-defined]
        return reopened

    async def _crash_mid_transaction(self, backend: Backend) -> None:
        assert isinstance(backend, Forwarding)
        await self.base.crash_mid_transaction(backend.inner)  # type: ignore[attr-defined]

    def _discard(self, backend: Backend) -> None:
        assert isinstance(backend, Forwarding)
        self.base.discard(backend.inner)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"WrappingFactory({self.base!r}, {getattr(self.wrapper, '__name__', '?')})"


#: Bases for `python -m properties.catch_table --backend properties.broken:SQLITE`.
MEMORY = MemoryFactory()
SQLITE = SqliteFactory()


def broken_backends(base: BackendFactory) -> dict[str, BackendFactory]:
    """A factory per generated mutant, each wrapping the backends `base` makes."""
    return {name: WrappingFactory(base, cls) for name, cls in mutant_classes().items()}


__all__ = [
    "RAISES",
    "SETTLE_REFUSALS",
    "Forwarding",
    "WrappingFactory",
    "broken_backends",
    "family",
    "mutant_classes",
    "recording",
]
