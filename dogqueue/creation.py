"""Making jobs, and the step every unit of work shares: decide a command, append its
events, fold them and save the state (`JobCreator._apply`). The engine
(`dogqueue.engine.Engine`) adds the units that act on existing jobs.

A plain enqueue (no key, no parents) of one job or of many goes through one path,
`create_plain`, which decides every job with the core before it writes any; jobs with
parents are created one at a time, once every parent they name is known to exist.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from dogqueue.core import cron
from dogqueue.core.commands import AnyCommand, Enqueue, SettleParent
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import ScheduleSpec
from dogqueue.core.decide import decide
from dogqueue.core.errors import InvalidInput, JobAlreadyExists, JobNotFound
from dogqueue.core.events import AnyEvent
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.message import JobMessage
from dogqueue.core.status import JobStatus
from dogqueue.core.validation import PreparedEnqueue
from dogqueue.ids import new_job_id, new_job_ids
from dogqueue.unitofwork import PlainEnqueue, Reads, Transaction, Unit, is_plain


class JobCreator:
    """Makes the units of work that create jobs. `new_id` makes job ids (`new_ids`, if
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
        if len(requests) == 1 and len(requests[0].messages) == 1:  # a lone caller's job
            lone = requests[0]
            job_id = self.new_id()
            event = self._plain_event(lone, job_id, lone.messages[0], now)
            tx.save(None, evolve(None, tx.append(event)))
            return [[job_id]]
        drawn = self.new_ids(sum(len(request.messages) for request in requests))
        results: list[list[str]] = []
        events: list[AnyEvent] = []
        first = 0
        for request in requests:
            job_ids = drawn[first : first + len(request.messages)]
            first += len(job_ids)
            for job_id, message in zip(job_ids, request.messages, strict=True):
                events.append(self._plain_event(request, job_id, message, now))
            results.append(job_ids)
        for event in events:  # a new job never ends
            tx.save(None, evolve(None, tx.append(event)))
        return results

    def _plain_event(
        self, request: PlainEnqueue, job_id: str, message: JobMessage, now: datetime
    ) -> AnyEvent:
        """The one event that creates a plain job (`decide` makes no other)."""
        command = Enqueue(
            tenant_id=request.tenant_id,
            job_id=job_id,
            at=now,
            message=message,
            trace_context=request.trace_context,
        )
        (event,) = decide(None, command, self.config)
        return event

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
