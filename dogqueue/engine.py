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

import msgspec

from dogqueue.core import cron
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
    SettleParent,
)
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import ScheduleSpec
from dogqueue.core.decide import decide
from dogqueue.core.errors import InvalidInput, JobAlreadyExists, JobNotFound, QueueError
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

    def latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        """The greatest idempotency key of the tenant's jobs that starts with `prefix` (a
        schedule's, in the cron namespace), with its job's id; or None."""
        ...

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        """The tenant's best ENQUEUED job in `queues` due at `now`: the smallest
        `dogqueue.core.order.dequeue_key` (the conformance suite checks every backend)."""
        ...

    def expired_leases(self, tenant_id: str | None, now: datetime) -> list[JobInfo]:
        """LEASED jobs (of one tenant, or all) whose lease ended at or before `now`."""
        ...

    def dependents(self, tenant_id: str, job_id: str) -> list[str]:
        """The ids of the jobs created after this one (`JobMessage.after`), oldest first."""
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
    #: Key prefixes whose greatest key the unit looks up, as (tenant_id, prefix).
    key_prefixes: tuple[tuple[str, str], ...] = ()
    #: Jobs the unit creates (each needs an enqueue position).
    new_jobs: int = 0
    #: Ready jobs the unit may lease: (tenant_id, queues, at most how many).
    ready: tuple[tuple[str, tuple[str, ...], int], ...] = ()
    #: Expired leases the unit reclaims: a tenant, or None for every tenant. The
    #: dependents of the jobs it reclaims are declared with them.
    expired: tuple[str | None, ...] = ()
    #: Jobs the unit may end, as (tenant_id, job_id): it reads their dependents, and
    #: theirs in turn (the closure), to settle the jobs waiting for them.
    dependents: tuple[tuple[str, str], ...] = ()


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
        """Decide and record `command`; a job it ends settles the jobs waiting for it."""
        return self._record(tx, state, command, decide(state, command, self.config))

    def _record(
        self,
        tx: Transaction,
        state: JobInfo | None,
        command: AnyCommand,
        events: Sequence[AnyEvent],
    ) -> JobInfo:
        """Append what `decide` returned for `command` and save the folded state; a job
        this ends settles the jobs waiting for it."""
        after = self._record_one(tx, state, command, events)
        if after.status.is_terminal and (state is None or not state.status.is_terminal):
            self._settle_dependents(tx, after, command.at)
        return after

    def _settle_dependents(self, tx: Transaction, ended: JobInfo, now: datetime) -> int:
        """Tell every WAITING dependent of `ended` that it ended; a dependent this
        cancels settles its own dependents in turn (a worklist, not recursion, so long
        chains need no deep stack). Return how many dependents became ENQUEUED."""
        unblocked = 0
        pending = [ended]
        while pending:
            parent = pending.pop()
            for child_id in tx.dependents(parent.tenant_id, parent.job_id):
                child = tx.load(parent.tenant_id, child_id)
                if child is None or child.status is not JobStatus.WAITING:
                    continue
                settled = self._apply_one(tx, child, _parent_ended(parent, child_id, now))
                if settled.status.is_terminal:
                    pending.append(settled)
                elif settled.status is JobStatus.ENQUEUED:
                    unblocked += 1
        return unblocked

    def _apply_one(self, tx: Transaction, state: JobInfo | None, command: AnyCommand) -> JobInfo:
        """Decide and record `command` alone, leaving the jobs waiting for it as they are."""
        return self._record_one(tx, state, command, decide(state, command, self.config))

    def _record_one(
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
        """Create every job or none (messages already validated, `after_earlier`
        indexes included).

        A job's parents must exist when it is created and `after` never changes, so
        every dependency points from an older job to a newer one: following them only
        ever goes forward in time, and no cycle can form."""
        for message in messages:
            key = message.idempotency_key
            if key is not None:
                existing = tx.job_for_key(tenant_id, key)
                if existing is not None:
                    raise JobAlreadyExists(existing, key)
        for message in messages:
            for parent in message.after:
                if tx.load(tenant_id, parent) is None:
                    raise InvalidInput("after", f"names job {parent!r}, which does not exist")
        job_ids: list[str] = []
        for message in messages:
            job_ids.append(self._create(tx, tenant_id, message, now, trace_context, job_ids))
        return job_ids

    def _create(
        self,
        tx: Transaction,
        tenant_id: str,
        message: JobMessage,
        now: datetime,
        trace_context: dict[str, str] | None = None,
        earlier: Sequence[str] = (),
    ) -> str:
        """Create one job (WAITING while a parent is unfinished); `earlier` are the ids
        created before it in the same call, which its `after_earlier` indexes."""
        job_id = self.new_id()
        parents = message.after + tuple(earlier[i] for i in message.after_earlier)
        states = [self._load(tx, tenant_id, parent) for parent in parents]
        if message.after_earlier:
            message = msgspec.structs.replace(message, after=parents, after_earlier=())
        command = Enqueue(
            tenant_id=tenant_id,
            job_id=job_id,
            at=now,
            message=message,
            trace_context=trace_context,
            waiting_for=tuple(
                state.job_id for state in states if state.status is not JobStatus.COMPLETED
            ),
        )
        created = self._apply(tx, None, command)
        for ended in states:  # parents that already failed or were canceled
            if ended.status.is_terminal and ended.status is not JobStatus.COMPLETED:
                created = self._apply(tx, created, _parent_ended(ended, job_id, now))
        return job_id

    def enqueue_ticks(
        self,
        tx: Transaction,
        tenant_id: str,
        schedule: ScheduleSpec,
        at: datetime,
        now: datetime,
        limit: int,
    ) -> list[str]:
        """Enqueue the schedule's ticks due `at` that come after its newest enqueued tick
        (read from the log in this transaction), at most the newest `limit`, one job per
        tick keyed by the tick."""
        latest = tx.latest_key(tenant_id, cron.key_prefix(schedule.name))
        messages = cron.tick_messages(schedule, None if latest is None else latest[0], at)
        del messages[:-limit]
        # Each key sorts after the schedule's greatest key, so no job holds it yet; the
        # storage's unique (tenant, key) constraint still settles a race between writers.
        return [self._create(tx, tenant_id, message, now) for message in messages]

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
    ) -> int:
        """Acknowledge success under a valid lease; return how many jobs waiting for
        this one it released."""
        state = self._load(tx, tenant_id, lease.job_id)
        command = Complete(
            tenant_id=tenant_id,
            job_id=lease.job_id,
            at=now,
            token=lease.lease_token,
            result=result,
        )
        return self._settle_dependents(tx, self._apply_one(tx, state, command), now)

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

    def cancel_workflow(
        self,
        tx: Transaction,
        tenant_id: str,
        job_id: str,
        now: datetime,
        *,
        actor: str | None = None,
    ) -> list[str]:
        """Cancel the job and every job that depends on it, directly or not; return the
        ids of the jobs this canceled (those already terminal are left alone)."""
        self._load(tx, tenant_id, job_id)
        order = [job_id]
        seen = {job_id}
        for parent in order:  # grows as it goes: breadth first over the dependents
            for child in tx.dependents(tenant_id, parent):
                if child not in seen:
                    seen.add(child)
                    order.append(child)
        live = [
            state
            for state in (tx.load(tenant_id, member) for member in order)
            if state is not None and not state.status.is_terminal
        ]
        for state in live:
            current = self._load(tx, tenant_id, state.job_id)
            command = Cancel(tenant_id=tenant_id, job_id=state.job_id, at=now, actor=actor)
            self._apply(tx, current, command)
        return [state.job_id for state in live]

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


def _parent_ended(parent: JobInfo, child_id: str, now: datetime) -> SettleParent:
    """The command telling the job `child_id` that `parent` (terminal) ended, and why."""
    return SettleParent(
        tenant_id=parent.tenant_id,
        job_id=child_id,
        at=now,
        parent_id=parent.job_id,
        parent_status=parent.status.value,
        reason=parent.last_error if parent.status is JobStatus.FAILED else None,
    )


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
