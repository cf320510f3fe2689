"""Where the pure core meets storage: load a job, decide, append, evolve, save.

Every backend runs these units of work inside one of its transactions. A unit of work
raises a QueueError only before its first write, so a refused command never leaves a
partial append behind, even when it shares a transaction with others (group commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from dogqueue.core.commands import (
    AnyCommand,
    Cancel,
    Complete,
    Enqueue,
    Expire,
    ExtendLease,
    Fail,
    Lease,
    Release,
    Requeue,
)
from dogqueue.core.config import QueueConfig
from dogqueue.core.decide import decide
from dogqueue.core.errors import JobAlreadyExists, JobNotFound, QueueError
from dogqueue.core.events import AnyEvent
from dogqueue.core.evolve import evolve
from dogqueue.core.job import Completion, JobInfo, LeasedJob, Settlement
from dogqueue.core.message import JobMessage
from dogqueue.core.status import JobStatus


class Transaction(Protocol):
    """Storage as one unit of work sees it. Reads see the unit's own writes."""

    def load(self, tenant_id: str, job_id: str) -> JobInfo | None:
        """The job's projected state, or None."""
        ...

    def job_for_key(self, tenant_id: str, idempotency_key: str) -> str | None:
        """The id of the tenant's job holding this idempotency key, or None."""
        ...

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        """The tenant's best ENQUEUED job in `queues` due at `now`: highest priority,
        then earliest run_at, then earliest enqueued."""
        ...

    def expired_leases(self, tenant_id: str | None, now: datetime) -> list[JobInfo]:
        """LEASED jobs (of one tenant, or all) whose lease ended at or before `now`."""
        ...

    def append(self, event: AnyEvent) -> AnyEvent:
        """Append the event to the log; return it with its assigned `seq`."""
        ...

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        """Replace the job's projected state `before` with `after`."""
        ...


class BatchTransaction(Transaction, Protocol):
    """A Transaction shared by several units of work, counting its writes."""

    writes: int


TxT = TypeVar("TxT", bound=BatchTransaction)


class RefusedAfterWrite(Exception):
    """A unit of work raised a QueueError after it wrote: its batch must not commit
    (the QueueError is the cause)."""


def run_units(tx: TxT, units: Sequence[Callable[[TxT, datetime], Any]], now: datetime) -> list[Any]:
    """Run units of work in order in one transaction. A unit refused before its first
    write (a QueueError) fails alone: the error is its result; one refused after writing
    raises RefusedAfterWrite, so that the whole batch is rolled back and re-run unit by unit."""
    results: list[Any] = []
    for unit in units:
        before = tx.writes
        try:
            results.append(unit(tx, now))
        except QueueError as error:
            if tx.writes != before:
                raise RefusedAfterWrite(f"{error!r} after a write") from error
            results.append(error)
    return results


def unwrap_refusal(error: BaseException) -> BaseException:
    """The QueueError behind a RefusedAfterWrite, else the error itself."""
    if isinstance(error, RefusedAfterWrite) and error.__cause__ is not None:
        return error.__cause__
    return error


def deliver(futures: Sequence[asyncio.Future[Any]], results: Sequence[Any]) -> None:
    """Resolve each caller's future with its unit's result, an error being raised in the
    caller; a future already done (its caller gave up) is left alone."""
    for future, result in zip(futures, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


@dataclass(frozen=True, slots=True)
class Reads:
    """What one unit of work may read, declared before it runs, so that a backend with
    a remote database can fetch a whole batch's reads at once and run the units on an
    in-memory working set. Backends that read as they go ignore it."""

    #: Jobs the unit loads, as (tenant_id, job_id).
    jobs: tuple[tuple[str, str], ...] = ()
    #: Idempotency keys the unit looks up, as (tenant_id, key).
    keys: tuple[tuple[str, str], ...] = ()
    #: Jobs the unit creates (each needs an enqueue position).
    new_jobs: int = 0
    #: Ready jobs the unit may lease: (tenant_id, queues, at most how many).
    ready: tuple[tuple[str, tuple[str, ...], int], ...] = ()
    #: Expired leases the unit reclaims: a tenant, or None for every tenant.
    expired: tuple[str | None, ...] = ()


class Engine:
    """Runs commands against a Transaction. `new_id` makes job ids and `draw` returns
    uniform numbers in [0, 1] for retry jitter: the shell's sources, never the core's."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        new_id: Callable[[], str],
        draw: Callable[[], float],
    ) -> None:
        self.config = config
        self.new_id = new_id
        self.draw = draw

    def _apply(self, tx: Transaction, state: JobInfo | None, command: AnyCommand) -> JobInfo:
        return self._record(tx, state, command, decide(state, command, self.config))

    def _record(
        self,
        tx: Transaction,
        state: JobInfo | None,
        command: AnyCommand,
        events: Sequence[AnyEvent],
    ) -> JobInfo:
        """Append what `decide` returned for `command` and save the folded state."""
        after = state
        for event in events:
            after = evolve(after, tx.append(event))
        if after is None:
            raise JobNotFound(command.job_id)
        if after is not state:
            tx.save(state, after)
        return after

    def _load(self, tx: Transaction, tenant_id: str, job_id: str) -> JobInfo:
        state = tx.load(tenant_id, job_id)
        if state is None:
            raise JobNotFound(job_id)
        return state

    def enqueue(
        self,
        tx: Transaction,
        tenant_id: str,
        messages: Sequence[JobMessage],
        now: datetime,
        trace_context: dict[str, str] | None = None,
    ) -> list[str]:
        """Create every job or none (messages already validated)."""
        for message in messages:
            key = message.idempotency_key
            if key is not None:
                existing = tx.job_for_key(tenant_id, key)
                if existing is not None:
                    raise JobAlreadyExists(existing, key)
        job_ids = []
        for message in messages:
            job_id = self.new_id()
            command = Enqueue(
                tenant_id=tenant_id,
                job_id=job_id,
                at=now,
                message=message,
                trace_context=trace_context,
            )
            self._apply(tx, None, command)
            job_ids.append(job_id)
        return job_ids

    def reclaim(self, tx: Transaction, tenant_id: str | None, now: datetime) -> int:
        """Expire every lease (of one tenant, or all) whose time has come."""
        expired = tx.expired_leases(tenant_id, now)
        for state in expired:
            command = Expire(
                tenant_id=state.tenant_id, job_id=state.job_id, at=now, draw=self.draw()
            )
            self._apply(tx, state, command)
        return len(expired)

    def dequeue(
        self,
        tx: Transaction,
        tenant_id: str,
        queues: tuple[str, ...],
        now: datetime,
        duration: timedelta,
        limit: int,
    ) -> list[LeasedJob]:
        """Reclaim the tenant's expired leases, then lease up to `limit` jobs in order."""
        self.reclaim(tx, tenant_id, now)
        leases = []
        for _ in range(limit):
            state = tx.next_ready(tenant_id, queues, now)
            if state is None:
                break
            command = Lease(tenant_id=tenant_id, job_id=state.job_id, at=now, duration=duration)
            leases.append(lease_of(self._apply(tx, state, command)))
        return leases

    def heartbeat(
        self,
        tx: Transaction,
        tenant_id: str,
        lease: LeasedJob,
        now: datetime,
        duration: timedelta,
        progress: tuple[float, str | None] | None = None,
    ) -> LeasedJob:
        """Extend a valid lease, recording the job's progress if given."""
        state = self._load(tx, tenant_id, lease.job_id)
        done, message = progress if progress is not None else (None, None)
        command = ExtendLease(
            tenant_id=tenant_id,
            job_id=lease.job_id,
            at=now,
            token=lease.lease_token,
            duration=duration,
            progress=done,
            progress_message=message,
        )
        return lease_of(self._apply(tx, state, command))

    def complete(
        self, tx: Transaction, tenant_id: str, lease: LeasedJob, now: datetime, result: bytes | None
    ) -> None:
        """Acknowledge success under a valid lease."""
        state = self._load(tx, tenant_id, lease.job_id)
        command = Complete(
            tenant_id=tenant_id,
            job_id=lease.job_id,
            at=now,
            token=lease.lease_token,
            result=result,
        )
        self._apply(tx, state, command)

    def fail(
        self,
        tx: Transaction,
        tenant_id: str,
        lease: LeasedJob,
        now: datetime,
        error: str,
        retry: bool,
    ) -> JobStatus:
        """Acknowledge failure under a valid lease; ENQUEUED when a retry is scheduled."""
        state = self._load(tx, tenant_id, lease.job_id)
        command = Fail(
            tenant_id=tenant_id,
            job_id=lease.job_id,
            at=now,
            token=lease.lease_token,
            error=error,
            retry=retry,
            draw=self.draw(),
        )
        return self._apply(tx, state, command).status

    def settle(
        self,
        tx: Transaction,
        tenant_id: str,
        settlements: Sequence[Settlement],
        now: datetime,
    ) -> list[JobStatus | QueueError]:
        """Acknowledge many leased jobs, in order, each on its own: the result of each is
        the job's status afterwards, or the QueueError refusing it (lease lost, canceled,
        unknown), in which case it wrote nothing and the others still count."""
        results: list[JobStatus | QueueError] = []
        for settlement in settlements:
            lease = settlement.lease
            state = tx.load(tenant_id, lease.job_id)
            if state is None:
                results.append(JobNotFound(lease.job_id))
                continue
            command: Complete | Fail
            if isinstance(settlement, Completion):
                command = Complete(
                    tenant_id=tenant_id,
                    job_id=lease.job_id,
                    at=now,
                    token=lease.lease_token,
                    result=settlement.result,
                )
            else:
                command = Fail(
                    tenant_id=tenant_id,
                    job_id=lease.job_id,
                    at=now,
                    token=lease.lease_token,
                    error=settlement.error,
                    retry=settlement.retry,
                    draw=self.draw(),
                )
            try:  # decide refuses before anything is written
                events = decide(state, command, self.config)
            except QueueError as refused:
                results.append(refused)
                continue
            results.append(self._record(tx, state, command, events).status)
        return results

    def release(self, tx: Transaction, tenant_id: str, lease: LeasedJob, now: datetime) -> None:
        """Give a valid lease back without counting the attempt."""
        state = self._load(tx, tenant_id, lease.job_id)
        command = Release(tenant_id=tenant_id, job_id=lease.job_id, at=now, token=lease.lease_token)
        self._apply(tx, state, command)

    def cancel(
        self,
        tx: Transaction,
        tenant_id: str,
        job_id: str,
        now: datetime,
        *,
        actor: str | None = None,
    ) -> JobStatus:
        """Cancel unless terminal; return the job's status afterwards. `actor` names who
        asked, for the log."""
        state = self._load(tx, tenant_id, job_id)
        command = Cancel(tenant_id=tenant_id, job_id=job_id, at=now, actor=actor)
        return self._apply(tx, state, command).status

    def requeue(
        self,
        tx: Transaction,
        tenant_id: str,
        job_id: str,
        now: datetime,
        include_canceled: bool,
        *,
        actor: str | None = None,
    ) -> JobStatus:
        """Put a dead job back in the queue with fresh attempts."""
        state = self._load(tx, tenant_id, job_id)
        command = Requeue(
            tenant_id=tenant_id,
            job_id=job_id,
            at=now,
            include_canceled=include_canceled,
            actor=actor,
        )
        return self._apply(tx, state, command).status


def lease_of(state: JobInfo) -> LeasedJob:
    """The lease a LEASED job's state describes."""
    assert state.lease_expires_at is not None
    return LeasedJob(
        job_id=state.job_id,
        tenant_id=state.tenant_id,
        message=state.message,
        lease_token=state.lease_token,
        lease_expires_at=state.lease_expires_at,
        attempt=state.attempts,
    )
