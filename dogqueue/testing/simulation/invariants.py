"""The invariants of a fleet run, checked on every new event of the log (after every
backend call) and on what the jobs themselves saw.

The log side folds each job with the core's `evolve` and checks each event against the
state before it. The worker side knows what no log says: which execution (host, lease
token) produced a result, when a canceled job's code actually stopped, and which
parents a producer meant a job to wait for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from dogqueue.core.events import (
    AnyEvent,
    Completed,
    Enqueued,
    Expired,
    Failed,
    Heartbeat,
    Leased,
    Released,
    Requeued,
)
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey, rebuild
from dogqueue.core.status import JobStatus
from dogqueue.testing.simulation.loop import Host

#: The job type of the schedules' ticks.
TICK_TYPE = "sim.tick"
#: How long after a cancel from another host its running job may still run: a few of
#: the worker's cancel checks (on a clock that may run at half speed), virtual seconds.
OTHER_HOST_CANCEL_SECONDS = 3.0


class Violation(AssertionError):
    """An invariant broke: `name` says which."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name


@dataclass
class Execution:
    """One run of a job's code: on which host, under which lease token."""

    host: Host
    key: JobKey
    token: int
    started: float
    ended: float | None = None
    how: str = "running"
    #: Latest time the code may still run, set when the job is canceled.
    deadline: float | None = None
    paused: bool = False


@dataclass
class Intent:
    """What a producer meant: the job's parents (by idempotency key) and policy."""

    parents: tuple[str, ...] = ()
    policy: str = "cancel"


@dataclass
class Checker:
    """Folds the log, event by event, and checks each against what came before."""

    jobs: dict[JobKey, JobInfo] = field(default_factory=dict)
    by_key: dict[tuple[str, str], str] = field(default_factory=dict)
    intents: dict[tuple[str, str], Intent] = field(default_factory=dict)
    ticks: set[tuple[str, datetime]] = field(default_factory=set)
    executions: dict[tuple[str, str, int], Execution] = field(default_factory=dict)
    #: The executions not ended yet (those the cancel and pause rules look at).
    running: dict[tuple[str, str, int], Execution] = field(default_factory=dict)
    #: The jobs not final, and the producer's keys with no job yet (kept as the log
    #: grows: the end of a run asks for them every second).
    open_jobs: set[JobKey] = field(default_factory=set)
    unseen: dict[tuple[str, str], None] = field(default_factory=dict)
    canceled_at: dict[JobKey, float] = field(default_factory=dict)
    seen: int = 0
    lifecycles: int = 0

    # -- the log -----------------------------------------------------------------------

    def events(self, events: list[AnyEvent]) -> None:
        """Check and fold events of the log not seen yet (in log order)."""
        for event in events:
            if event.seq <= self.seen:
                continue
            self.seen = event.seq
            key = (event.tenant_id, event.job_id)
            before = self.jobs.get(key)
            self._check(event, before)
            try:
                after = evolve(before, event)
            except Exception as error:
                raise Violation("fold", f"{event!r} does not apply: {error}") from None
            self.jobs[key] = after
            if after.status.is_terminal:
                if before is not None and not before.status.is_terminal:
                    self.lifecycles += 1
                self.open_jobs.discard(key)
            else:
                self.open_jobs.add(key)

    def _check(self, event: AnyEvent, before: JobInfo | None) -> None:
        if isinstance(event, Enqueued):
            self._enqueued(event)
            return
        if before is None:
            raise Violation("fold", f"{event.type} of job {event.job_id} before its enqueue")
        if before.status is JobStatus.CANCELED and not isinstance(event, Requeued):
            raise Violation("cancel wins", f"{event.type} of {event.job_id} after its cancel")
        if isinstance(event, Leased):
            self._leased(event, before)
        elif isinstance(event, (Heartbeat, Completed, Failed, Expired, Released)):
            self._current_token(event, before)
            if isinstance(event, Completed):
                self._completed(event)
            expires = before.lease_expires_at
            if isinstance(event, Expired) and expires is not None and event.at < expires:
                raise Violation("lease", f"{event.job_id} reclaimed before it expired")

    def _enqueued(self, event: Enqueued) -> None:
        message = event.message
        if message.idempotency_key is not None:
            self.by_key[(event.tenant_id, message.idempotency_key)] = event.job_id
            self.unseen.pop((event.tenant_id, message.idempotency_key), None)
        if message.job_type == TICK_TYPE:
            tick = (event.tenant_id, message.run_at)
            if tick in self.ticks:
                raise Violation("cron tick once", f"tick {tick} enqueued twice")
            self.ticks.add(tick)  # type: ignore[arg-type]

    def _leased(self, event: Leased, before: JobInfo) -> None:
        if before.status is JobStatus.LEASED:
            raise Violation(
                "one live lease",
                f"{event.job_id} leased (token {event.token}) while token"
                f" {before.lease_token} held it until {before.lease_expires_at}",
            )
        key = before.message.idempotency_key
        intent = self.intents.get((event.tenant_id, key)) if key is not None else None
        if intent is None:
            return
        for parent_key in intent.parents:
            parent_id = self.by_key.get((event.tenant_id, parent_key))
            parent = self.jobs.get((event.tenant_id, parent_id)) if parent_id else None
            status = None if parent is None else parent.status
            done = status is JobStatus.COMPLETED or (
                intent.policy == "run" and status is not None and status.is_terminal
            )
            if not done:
                raise Violation(
                    "parents first", f"{event.job_id} leased while parent {parent_id} is {status}"
                )

    def _current_token(self, event: AnyEvent, before: JobInfo) -> None:
        token = getattr(event, "token", None)
        if before.status is not JobStatus.LEASED or token != before.lease_token:
            raise Violation(
                "current token",
                f"{event.type} of {event.job_id} with token {token}; the job is"
                f" {before.status} under token {before.lease_token}",
            )

    def _completed(self, event: Completed) -> None:
        if event.result is None:
            return
        ran = json.loads(event.result).get("token")
        execution = self.executions.get((event.tenant_id, event.job_id, ran))
        if ran != event.token or execution is None or execution.how != "done":
            raise Violation(
                "current token",
                f"{event.job_id} completed under token {event.token} with the result of"
                f" the execution under token {ran} ({execution and execution.how})",
            )

    # -- the jobs' side ----------------------------------------------------------------

    def started(self, host: Host, tenant_id: str, job_id: str, token: int, now: float) -> Execution:
        """A job's code started under `token`."""
        execution = Execution(host, (tenant_id, job_id), token, now)
        self.executions[(tenant_id, job_id, token)] = execution
        self.running[(tenant_id, job_id, token)] = execution
        return execution

    def ended(self, execution: Execution, how: str, now: float) -> None:
        """A job's code ended (`done`, `failed`, `cancelled`)."""
        execution.ended, execution.how = now, how
        key = (*execution.key, execution.token)
        if self.running.get(key) is execution:
            del self.running[key]
        self._check_deadline(execution, now)

    def canceled(self, key: JobKey, through: Host, now: float) -> None:
        """A cancel of job `key` committed through host `through`: its running code must
        stop at once on that host, and within a few cancel checks elsewhere."""
        for execution in self.running.values():
            if execution.key != key or execution.ended is not None:
                continue
            slack = 0.0 if execution.host is through else OTHER_HOST_CANCEL_SECONDS
            if execution.deadline is None:
                execution.deadline = now + slack

    def note_pause(self, host: Host) -> None:
        """A pause excuses the late stops of the host's running jobs."""
        for execution in self.running.values():
            if execution.host is host and execution.ended is None:
                execution.paused = True

    def overdue(self, now: float) -> None:
        """Fail if a canceled job's code is still running past its deadline."""
        for execution in self.running.values():
            if execution.ended is None and not execution.host.dead:
                self._check_deadline(execution, now)

    def _check_deadline(self, execution: Execution, now: float) -> None:
        if execution.deadline is None or execution.paused or execution.host.dead:
            return
        if now > execution.deadline + 1e-9:
            raise Violation(
                "cancel wins",
                f"job {execution.key[1]} ran on {execution.host.name} until {now:.3f} though"
                f" canceled, deadline {execution.deadline:.3f}",
            )

    # -- the end -------------------------------------------------------------------------

    def unfinished(self, before: datetime) -> list[JobInfo]:
        """Jobs not final though created before `before`, in log order."""
        jobs = (self.jobs[key] for key in self.open_jobs)
        return sorted((job for job in jobs if job.created_at < before), key=_first_seq)

    def missing(self) -> list[tuple[str, str]]:
        """Producer keys with no job in the log."""
        return list(self.unseen)

    def intend(self, tenant_id: str, key: str, intent: Intent) -> None:
        """A producer is about to enqueue a job with idempotency key `key`."""
        self.intents[(tenant_id, key)] = intent
        if (tenant_id, key) not in self.by_key:
            self.unseen[(tenant_id, key)] = None


def _first_seq(job: JobInfo) -> int:
    return job.enqueue_seq


def check_fold(events: list[AnyEvent], projected: dict[JobKey, JobInfo]) -> None:
    """The projection equals the fold of the whole log, read again from its start (what
    each job's status, attempts, token and result are)."""
    check_projection(rebuild(events), projected)


def check_projection(folded: dict[JobKey, JobInfo], projected: dict[JobKey, JobInfo]) -> None:
    """The projection equals `folded`, a fold of the log (the checker's own, kept as the
    log grew, or one of the whole log)."""
    if set(folded) != set(projected):
        raise Violation("fold == projection", f"jobs differ: {set(folded) ^ set(projected)}")
    for key, job in folded.items():
        seen = projected[key]
        mine = (job.status, job.attempts, job.lease_token, job.result, job.run_at)
        theirs = (seen.status, seen.attempts, seen.lease_token, seen.result, seen.run_at)
        if mine != theirs:
            raise Violation("fold == projection", f"job {key[1]}: fold {mine} != {theirs}")
