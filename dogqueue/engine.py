"""Where the pure core meets storage: load a job, decide, append, evolve, save.

Every backend runs these units of work inside one of its transactions
(`dogqueue.unitofwork`, whose names this module also exports). A unit that acts on many
jobs of one kind (a settlement of N, the jobs of plain enqueues) decides them all with
the core before it writes any.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from dogqueue.core.commands import (
    Cancel,
    Complete,
    Expire,
    ExtendLease,
    Fail,
    Lease,
    Release,
    Requeue,
)
from dogqueue.core.decide import decide
from dogqueue.core.errors import JobNotFound, QueueError
from dogqueue.core.events import AnyEvent
from dogqueue.core.evolve import evolve
from dogqueue.core.job import Completion, JobInfo, LeasedJob, Settlement
from dogqueue.core.status import JobStatus
from dogqueue.creation import JobCreator
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


class Engine(JobCreator):
    """Makes the units of work of every command: those that create jobs
    (`JobCreator`), and those that act on existing ones."""

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
