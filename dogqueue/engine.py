"""Where the pure core meets storage: load a job, decide, append, evolve, save.

Every backend runs these units of work inside one of its transactions
(`dogqueue.unitofwork`, whose names this module also exports). A unit that acts on many
jobs of one kind (a settlement of N, the jobs of plain enqueues) decides them all with
the core before it writes any.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

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
from dogqueue.core.validation import PreparedEnqueue
from dogqueue.ids import new_job_id, new_job_ids
from dogqueue.unitofwork import (
    BatchTransaction,
    PlainEnqueue,
    Reads,
    RefusedAfterWrite,
    T,
    Transaction,
    TxT,
    Unit,
    Work,
    deliver,
    is_plain,
    run_units,
    unwrap_refusal,
)

__all__ = ["BatchTransaction", "Engine", "PlainEnqueue", "Reads", "RefusedAfterWrite", "T"]
__all__ += ["Transaction", "TxT", "Unit", "Work", "deliver", "lease_of"]
__all__ += ["run_units", "unwrap_refusal"]


def _job_reads(tenant_id: str, job_id: str) -> Reads:
    return Reads(jobs=((tenant_id, job_id),))


def _ending_reads(tenant_id: str, job_id: str) -> Reads:
    """A unit that may end the job reads it and its dependents."""
    job = (tenant_id, job_id)
    return Reads(jobs=(job,), dependents=(job,))


class Engine:
    """Makes the units of work of every command. `new_id` makes job ids (`new_ids`, if
    given, several at once) and `draw` returns uniform numbers in [0, 1] for retry
    jitter: the shell's sources, never the core's; both are called when a unit runs, in
    the order units run."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        new_id: Callable[[], str],
        draw: Callable[[], float],
        new_ids: Callable[[int], list[str]] | None = None,
    ) -> None:
        self.config = config
        self.new_id = new_id
        self.draw = draw
        #: `n` ids at once, as `new_id` called n times would make them.
        self.new_ids = new_ids or (
            new_job_ids if new_id is new_job_id else lambda n: [new_id() for _ in range(n)]
        )

    def _apply(
        self,
        tx: Transaction,
        state: JobInfo | None,
        command: AnyCommand,
        events: Sequence[AnyEvent] | None = None,
        *,
        settle: bool = True,
    ) -> JobInfo:
        """Decide `command` (unless `events` is what `decide` returned for it), append
        its events and save the folded state; a job this ends settles the jobs waiting
        for it, unless `settle` is false."""
        if events is None:
            events = decide(state, command, self.config)
        after = state
        for event in events:
            after = evolve(after, tx.append(event))
        if after is None:
            raise JobNotFound(command.job_id)
        if after is not state:
            tx.save(state, after)
        if settle and after.status.is_terminal and (state is None or not state.status.is_terminal):
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
                command = _parent_ended(parent, child_id, now)
                settled = self._apply(tx, child, command, settle=False)
                if settled.status.is_terminal:
                    pending.append(settled)
                elif settled.status is JobStatus.ENQUEUED:
                    unblocked += 1
        return unblocked

    def _load(self, tx: Transaction, tenant_id: str, job_id: str) -> JobInfo:
        state = tx.load(tenant_id, job_id)
        if state is None:
            raise JobNotFound(job_id)
        return state

    def enqueue_unit(self, prepared: PreparedEnqueue) -> Unit[list[str]]:
        """Create every job or none; the result is their ids. `prepared` passed every
        input check (`dogqueue.core.validation.prepare_enqueue`)."""
        tenant_id, messages, trace_context = prepared
        reads = Reads(new_jobs=len(messages), tenant=tenant_id)
        if all(map(is_plain, messages)):
            return Unit(reads, PlainEnqueue(self, tenant_id, messages, trace_context))
        keys = tuple((tenant_id, k) for m in messages if (k := m.idempotency_key) is not None)
        parents = tuple(dict.fromkeys((tenant_id, p) for m in messages for p in m.after))
        return Unit(
            msgspec.structs.replace(reads, jobs=parents, keys=keys),
            lambda tx, now: self._enqueue(tx, tenant_id, messages, now, trace_context),
        )

    def _enqueue(
        self,
        tx: Transaction,
        tenant_id: str,
        messages: Sequence[JobMessage],
        now: datetime,
        trace_context: dict[str, str] | None,
    ) -> list[str]:
        for message in messages:
            key = message.idempotency_key
            if key is not None:
                existing = tx.job_for_key(tenant_id, key)
                if existing is not None:
                    raise JobAlreadyExists(existing, key)
        return self._create_all(tx, tenant_id, messages, now, trace_context)

    def _create_all(
        self,
        tx: Transaction,
        tenant_id: str,
        messages: Sequence[JobMessage],
        now: datetime,
        trace_context: dict[str, str] | None = None,
    ) -> list[str]:
        """Create the jobs in order, once every parent they name is known to exist.

        A job's parents must exist when it is created and `after` never changes, so
        every dependency points from an older job to a newer one: following them only
        ever goes forward in time, and no cycle can form."""
        if not any(m.after or m.after_earlier for m in messages):
            plain = PlainEnqueue(self, tenant_id, messages, trace_context)
            return self.create_plain(tx, [plain], now)[0]
        for message in messages:
            for parent in message.after:
                if tx.load(tenant_id, parent) is None:
                    raise InvalidInput("after", f"names job {parent!r}, which does not exist")
        job_ids: list[str] = []
        for message in messages:
            job_ids.append(self._create(tx, tenant_id, message, now, trace_context, job_ids))
        return job_ids

    def create_plain(
        self, tx: Transaction, requests: Sequence[PlainEnqueue], now: datetime
    ) -> list[list[str]]:
        """Create the jobs of several requests, none with parents, in one pass, in order:
        what `_create` does for each job, with one draw of ids for all of them; the result
        is each request's ids. Nothing here refuses a job (the caller checked the keys, if
        any)."""
        if len(requests) == 1 and len(requests[0].messages) == 1:  # its own pass costs less
            lone = requests[0]
            return [[self._create(tx, lone.tenant_id, lone.messages[0], now, lone.trace_context)]]
        drawn = self.new_ids(sum(len(request.messages) for request in requests))
        results: list[list[str]] = []
        events: list[AnyEvent] = []
        first = 0
        for request in requests:
            job_ids = drawn[first : first + len(request.messages)]
            first += len(job_ids)
            for job_id, message in zip(job_ids, request.messages, strict=True):
                command = Enqueue(
                    tenant_id=request.tenant_id,
                    job_id=job_id,
                    at=now,
                    message=message,
                    trace_context=request.trace_context,
                )
                events += decide(None, command, self.config)
            results.append(job_ids)
        for event in events:  # one event per job; a new job never ends
            tx.save(None, evolve(None, tx.append(event)))
        return results

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
        states: list[JobInfo] = []
        waiting_for: tuple[str, ...] = ()
        if message.after or message.after_earlier:  # most jobs have no parents
            parents = message.after + tuple(earlier[i] for i in message.after_earlier)
            states = [self._load(tx, tenant_id, parent) for parent in parents]
            if message.after_earlier:
                message = msgspec.structs.replace(message, after=parents, after_earlier=())
            waiting_for = tuple(s.job_id for s in states if s.status is not JobStatus.COMPLETED)
        command = Enqueue(
            tenant_id=tenant_id,
            job_id=job_id,
            at=now,
            message=message,
            trace_context=trace_context,
            waiting_for=waiting_for,
        )
        created = self._apply(tx, None, command)
        for ended in states:  # parents that already failed or were canceled
            if ended.status.is_terminal and ended.status is not JobStatus.COMPLETED:
                created = self._apply(tx, created, _parent_ended(ended, job_id, now))
        return job_id

    def ticks_unit(
        self, tenant_id: str, schedule: ScheduleSpec, at: datetime, limit: int
    ) -> Unit[list[str]]:
        """Enqueue the schedule's ticks due `at` that come after its newest enqueued tick
        (read from the log in this transaction), at most the newest `limit`, one job per
        tick keyed by the tick; the result is their ids."""
        prefix = cron.key_prefix(schedule.name)

        def run(tx: Transaction, now: datetime) -> list[str]:
            latest = tx.latest_key(tenant_id, prefix)
            messages = cron.tick_messages(schedule, None if latest is None else latest[0], at)
            del messages[:-limit]
            # Each key sorts after the schedule's greatest key, so no job holds it yet;
            # the storage's unique (tenant, key) constraint still settles a race.
            return self._create_all(tx, tenant_id, messages, now)

        parents = tuple((tenant_id, parent) for parent in schedule.message.after)
        return Unit(Reads(jobs=parents, key_prefixes=((tenant_id, prefix),), new_jobs=limit), run)

    def reclaim_unit(self, tenant_id: str | None) -> Unit[int]:
        """Expire every lease (of one tenant, or all) that has ended; the result: how many."""
        return Unit(Reads(expired=(tenant_id,)), lambda tx, now: self._reclaim(tx, tenant_id, now))

    def _reclaim(self, tx: Transaction, tenant_id: str | None, now: datetime) -> int:
        expired = tx.expired_leases(tenant_id, now)
        for state in expired:
            command = Expire(
                tenant_id=state.tenant_id, job_id=state.job_id, at=now, draw=self.draw()
            )
            self._apply(tx, state, command)
        return len(expired)

    def dequeue_unit(
        self, tenant_id: str, queues: tuple[str, ...], duration: timedelta, limit: int
    ) -> Unit[list[LeasedJob]]:
        """Reclaim the tenant's expired leases, then lease up to `limit` jobs in order."""

        def run(tx: Transaction, now: datetime) -> list[LeasedJob]:
            self._reclaim(tx, tenant_id, now)
            leases = []
            for _ in range(limit):
                state = tx.next_ready(tenant_id, queues, now)
                if state is None:
                    break
                command = Lease(tenant_id=tenant_id, job_id=state.job_id, at=now, duration=duration)
                leases.append(lease_of(self._apply(tx, state, command)))
            return leases

        return Unit(Reads(ready=((tenant_id, queues, limit),), expired=(tenant_id,)), run)

    def heartbeat_unit(
        self,
        tenant_id: str,
        lease: LeasedJob,
        duration: timedelta,
        progress: tuple[float, str | None] | None = None,
    ) -> Unit[LeasedJob]:
        """Extend a valid lease, recording the job's progress if given."""
        done, message = progress if progress is not None else (None, None)

        def run(tx: Transaction, now: datetime) -> LeasedJob:
            state = self._load(tx, tenant_id, lease.job_id)
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

        return Unit(_job_reads(tenant_id, lease.job_id), run)

    def _complete(
        self, tenant_id: str, lease: LeasedJob, now: datetime, result: bytes | None
    ) -> Complete:
        return Complete(
            tenant_id=tenant_id, job_id=lease.job_id, at=now, token=lease.lease_token, result=result
        )

    def _fail(
        self, tenant_id: str, lease: LeasedJob, now: datetime, error: str, retry: bool
    ) -> Fail:
        return Fail(
            tenant_id=tenant_id,
            job_id=lease.job_id,
            at=now,
            token=lease.lease_token,
            error=error,
            retry=retry,
            draw=self.draw(),
        )

    def complete_unit(self, tenant_id: str, lease: LeasedJob, result: bytes | None) -> Unit[int]:
        """Acknowledge success under a valid lease; the result is how many jobs waiting
        for this one it released."""

        def run(tx: Transaction, now: datetime) -> int:
            state = self._load(tx, tenant_id, lease.job_id)
            command = self._complete(tenant_id, lease, now, result)
            return self._settle_dependents(tx, self._apply(tx, state, command, settle=False), now)

        return Unit(_ending_reads(tenant_id, lease.job_id), run)

    def fail_unit(
        self, tenant_id: str, lease: LeasedJob, error: str, retry: bool
    ) -> Unit[JobStatus]:
        """Acknowledge failure under a valid lease; ENQUEUED when a retry is scheduled."""

        def run(tx: Transaction, now: datetime) -> JobStatus:
            state = self._load(tx, tenant_id, lease.job_id)
            return self._apply(tx, state, self._fail(tenant_id, lease, now, error, retry)).status

        return Unit(_ending_reads(tenant_id, lease.job_id), run)

    def settle_unit(
        self, tenant_id: str, settlements: Sequence[Settlement]
    ) -> Unit[list[JobStatus | QueueError]]:
        """Acknowledge many leased jobs, in order, each on its own: the result of each is
        the job's status afterwards, or the QueueError refusing it (lease lost, canceled,
        unknown), in which case it wrote nothing and the others still count."""

        def run(tx: Transaction, now: datetime) -> list[JobStatus | QueueError]:
            if len({item.lease.job_id for item in settlements}) < len(settlements):
                return self._settle_in_order(tx, tenant_id, settlements, now)
            return self._settle_all(tx, tenant_id, settlements, now)

        jobs = tuple((tenant_id, item.lease.job_id) for item in settlements)
        return Unit(Reads(jobs=jobs, dependents=jobs), run)

    def _settlement(self, tenant_id: str, item: Settlement, now: datetime) -> Complete | Fail:
        if isinstance(item, Completion):
            return self._complete(tenant_id, item.lease, now, item.result)
        return self._fail(tenant_id, item.lease, now, item.error, item.retry)

    def _settle_in_order(
        self,
        tx: Transaction,
        tenant_id: str,
        settlements: Sequence[Settlement],
        now: datetime,
        commands: Sequence[Complete | Fail | None] | None = None,
    ) -> list[JobStatus | QueueError]:
        """Settle each in turn, deciding each on the state the ones before left
        (`commands`: made already, for the jobs found, so no draw is made twice)."""
        results: list[JobStatus | QueueError] = []
        for index, item in enumerate(settlements):
            state = tx.load(tenant_id, item.lease.job_id)
            made = None if commands is None else commands[index]
            if state is None:
                results.append(JobNotFound(item.lease.job_id))
                continue
            command = made if made is not None else self._settlement(tenant_id, item, now)
            try:  # decide refuses before anything is written
                events = decide(state, command, self.config)
            except QueueError as refused:
                results.append(refused)
                continue
            results.append(self._apply(tx, state, command, events).status)
        return results

    def _settle_all(
        self, tx: Transaction, tenant_id: str, settlements: Sequence[Settlement], now: datetime
    ) -> list[JobStatus | QueueError]:
        """Settle jobs that are all different in one pass: each decided on its state
        before the batch, then all appended and saved. Settling one changes another only
        through its dependents: when one that ends has some, all are settled in order
        instead, as the same commands."""
        results: list[JobStatus | QueueError | None] = []
        commands: list[Complete | Fail | None] = []
        changes: list[tuple[int, JobInfo, JobInfo]] = []
        events: list[AnyEvent] = []
        in_order = False
        for index, item in enumerate(settlements):
            state = tx.load(tenant_id, item.lease.job_id)
            if state is None:
                results.append(JobNotFound(item.lease.job_id))
                commands.append(None)
                continue
            command = self._settlement(tenant_id, item, now)
            results.append(None)
            commands.append(command)
            try:
                decided = decide(state, command, self.config)
            except QueueError as refused:
                results[index] = refused
                continue
            after = _evolved(state, decided)  # evolve reads no `seq` but an Enqueued's
            if after.status.is_terminal and tx.dependents(tenant_id, state.job_id):
                in_order = True
            changes.append((index, state, after))
            events += decided
        if in_order:
            return self._settle_in_order(tx, tenant_id, settlements, now, commands)
        for event in events:
            tx.append(event)
        for index, state, after in changes:
            tx.save(state, after)
            results[index] = after.status
        return results  # type: ignore[return-value]  # every entry is set by now

    def release_unit(
        self,
        tenant_id: str,
        lease: LeasedJob,
        *,
        reason: str | None = None,
        until: datetime | None = None,
    ) -> Unit[None]:
        """Give a valid lease back without counting the attempt (`reason` and `until`
        recorded in the event)."""

        def run(tx: Transaction, now: datetime) -> None:
            state = self._load(tx, tenant_id, lease.job_id)
            command = Release(
                tenant_id=tenant_id,
                job_id=lease.job_id,
                at=now,
                token=lease.lease_token,
                reason=reason,
                until=until,
            )
            self._apply(tx, state, command)

        return Unit(_job_reads(tenant_id, lease.job_id), run)

    def cancel_unit(
        self, tenant_id: str, job_id: str, *, actor: str | None = None
    ) -> Unit[JobStatus]:
        """Cancel unless terminal; the result is the job's status afterwards. `actor`
        names who asked, for the log."""

        def run(tx: Transaction, now: datetime) -> JobStatus:
            state = self._load(tx, tenant_id, job_id)
            command = Cancel(tenant_id=tenant_id, job_id=job_id, at=now, actor=actor)
            return self._apply(tx, state, command).status

        return Unit(_ending_reads(tenant_id, job_id), run)

    def cancel_workflow_unit(
        self, tenant_id: str, job_id: str, *, actor: str | None = None
    ) -> Unit[list[str]]:
        """Cancel the job and every job that depends on it, directly or not; the result
        is the ids of the jobs this canceled (those already terminal are left alone)."""

        def run(tx: Transaction, now: datetime) -> list[str]:
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

        return Unit(_ending_reads(tenant_id, job_id), run)

    def requeue_unit(
        self, tenant_id: str, job_id: str, include_canceled: bool, *, actor: str | None = None
    ) -> Unit[JobStatus]:
        """Put a dead job back in the queue with fresh attempts; the result is its status."""

        def run(tx: Transaction, now: datetime) -> JobStatus:
            state = self._load(tx, tenant_id, job_id)
            command = Requeue(
                tenant_id=tenant_id,
                job_id=job_id,
                at=now,
                include_canceled=include_canceled,
                actor=actor,
            )
            return self._apply(tx, state, command).status

        return Unit(_job_reads(tenant_id, job_id), run)


def _evolved(state: JobInfo, events: Sequence[AnyEvent]) -> JobInfo:
    """The state after `events` (of an existing job)."""
    for event in events:
        state = evolve(state, event)
    return state


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
