"""Explain: why a job is where it is, in plain words, from its state and history."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from dogqueue.audit.timeline import runs
from dogqueue.core.events import (
    AnyEvent,
    Enqueued,
    Expired,
    Failed,
    Heartbeat,
    Leased,
    ParentFinished,
    Released,
    Requeued,
)
from dogqueue.core.job import JobInfo
from dogqueue.core.order import jobs_ahead as jobs_ahead  # re-exported
from dogqueue.core.status import JobPriority, JobStatus
from dogqueue.display import span

E = TypeVar("E")


@dataclass(frozen=True)
class Explanation:
    """The answer to "why is this job where it is?": a headline and supporting lines."""

    job: JobInfo
    headline: str
    details: tuple[str, ...]

    def __str__(self) -> str:
        # A detail's further lines (a traceback) are indented under its first.
        lines = [f"  {line}".replace("\n", "\n    ") for line in self.details]
        return "\n".join((self.headline, *lines))


def explain(
    job: JobInfo,
    history: Sequence[AnyEvent],
    now: datetime,
    ahead: int,
    family: Iterable[JobInfo] = (),
) -> Explanation:
    """Why `job` (its state at `now`, with `history` and `ahead` jobs before it in its
    queue) is where it is. `family` holds other jobs of its tenant: its parents and
    dependents among them are described too."""
    name = f"job {job.job_id} ({job.message.job_type}, queue {job.message.queue!r})"
    max_attempts = job.message.max_retries + 1
    attempts = _attempts(job, history)
    details: list[str] = [f"enqueued at {_time(job.created_at)}"]
    relatives = {other.job_id: other for other in family}
    story = _Story(job, history, now, ahead, name, attempts, max_attempts, relatives, details)
    headline = _STATUS_STORIES[job.status](story)
    if job.message.after and job.status is not JobStatus.WAITING:
        details.append(
            f"ran after {len(job.message.after)} parent(s): "
            + ", ".join(_relative(parent, relatives) for parent in job.message.after)
        )
    dependents = [other for other in relatives.values() if job.job_id in other.message.after]
    if dependents:
        details.append(_dependents_line(job, dependents))
    details.append(f"history: {len(history)} event(s); last at {_time(job.updated_at)}")
    return Explanation(job=job, headline=headline, details=tuple(details))


@dataclass(frozen=True, slots=True)
class _Story:
    """What each status's part of an explanation reads (and `details`, which it extends)."""

    job: JobInfo
    history: Sequence[AnyEvent]
    now: datetime
    ahead: int
    name: str
    attempts: str
    max_attempts: int
    relatives: dict[str, JobInfo]
    details: list[str]


def _waiting(story: _Story) -> str:
    """The headline of a waiting job; its details go into `story.details`."""
    job = story.job
    name = story.name
    relatives = story.relatives
    details = story.details
    parents = job.message.after
    headline = (
        f"{name} is waiting for {len(job.waiting_for)} of {len(parents)} parents: "
        + ", ".join(_relative(parent, relatives) for parent in job.waiting_for)
    )
    done = [parent for parent in parents if parent not in job.waiting_for]
    if done:
        details.append("parents already ended: " + ", ".join(done))
    if job.message.on_parent_failure == "run":
        details.append("it runs even if a parent fails or is canceled")
    else:
        details.append("it is canceled if a parent fails or is canceled")
    return headline


def _enqueued(story: _Story) -> str:
    """The headline of a enqueued job; its details go into `story.details`."""
    job = story.job
    history = story.history
    now = story.now
    ahead = story.ahead
    name = story.name
    attempts = story.attempts
    details = story.details
    hold = _deploy_hold(history)
    reason = _why_enqueued(history) if hold is None else hold
    if reason:
        details.append(reason)
    details.append(f"attempts so far: {attempts}")
    if job.run_at > now:
        headline = f"{name} is scheduled for {_time(job.run_at)} (in {span(job.run_at - now)})"
    else:
        headline = f"{name} is ready since {_time(job.run_at)} and waiting to be leased"
        details.append(
            f"{ahead} job(s) of higher priority or enqueued earlier are ahead of it in"
            f" queue {job.message.queue!r}"
            f" (its priority: {JobPriority(job.message.priority).name})"
        )
    return headline


def _leased(story: _Story) -> str:
    """The headline of a leased job; its details go into `story.details`."""
    job = story.job
    history = story.history
    now = story.now
    name = story.name
    attempts = story.attempts
    details = story.details
    assert job.lease_expires_at is not None
    headline = (
        f"{name} is leased until {_time(job.lease_expires_at)}"
        f" with token {job.lease_token}, attempt {attempts}"
    )
    leased = _last(history, Leased)
    if leased is not None:
        details.append(f"leased at {_time(leased.at)} ({span(now - leased.at)} ago)")
    hold = _deploy_hold(history)
    if hold is not None:
        details.append(hold)
    reported = _last_progress(history)
    if reported is not None:
        note = "" if reported.progress_message is None else f": {reported.progress_message}"
        details.append(
            f"reported {100 * (reported.progress or 0):.0f}% done at {_time(reported.at)}{note}"
        )
    if job.lease_expires_at <= now:
        details.append(
            "the lease has run out: the next dequeue or reaper run will expire it"
            " and count the attempt as failed"
        )
    return headline


def _completed(story: _Story) -> str:
    """The headline of a completed job; its details go into `story.details`."""
    job = story.job
    history = story.history
    name = story.name
    attempts = story.attempts
    details = story.details
    assert job.finished_at is not None
    headline = (
        f"{name} completed at {_time(job.finished_at)},"
        f" {span(job.finished_at - job.created_at)} after it was enqueued"
    )
    leased = _last(history, Leased)
    if leased is not None:
        details.append(
            f"the successful attempt ({attempts}) ran for {span(job.finished_at - leased.at)}"
        )
    return headline


def _failed(story: _Story) -> str:
    """The headline of a failed job; its details go into `story.details`."""
    job = story.job
    history = story.history
    name = story.name
    max_attempts = story.max_attempts
    details = story.details
    assert job.finished_at is not None
    headline = (
        f"{name} failed for good at {_time(job.finished_at)} after {runs(history)} attempt(s)"
    )
    details.append(f"last error: {job.last_error}")
    if job.attempts < max_attempts:
        details.append("the failure was permanent (no retry was asked for)")
    else:
        details.append(f"no retries were left (max_retries={job.message.max_retries})")
    return headline


def _canceled(story: _Story) -> str:
    """The headline of a canceled job; its details go into `story.details`."""
    job = story.job
    history = story.history
    name = story.name
    details = story.details
    assert job.finished_at is not None
    headline = f"{name} was canceled at {_time(job.finished_at)}"
    if isinstance(history[-1], ParentFinished):
        details.append(f"because {job.last_error}")
    details.append(f"it had made {runs(history)} attempt(s) before")
    return headline


#: The headline (and details) for each status.
_STATUS_STORIES: dict[JobStatus, Callable[[_Story], str]] = {
    JobStatus.WAITING: _waiting,
    JobStatus.ENQUEUED: _enqueued,
    JobStatus.LEASED: _leased,
    JobStatus.COMPLETED: _completed,
    JobStatus.FAILED: _failed,
    JobStatus.CANCELED: _canceled,
}


def _attempts(job: JobInfo, history: Sequence[AnyEvent]) -> str:
    """Which attempt this is, counting every run; after an operator's retry the new
    round's own count (what the retry budget reads) follows."""
    every, allowed = runs(history), job.message.max_retries + 1
    if every == job.attempts:
        return f"{every} of {allowed}"
    return f"{every} in all ({job.attempts} of {allowed} since an operator's retry)"


def _relative(job_id: str, relatives: dict[str, JobInfo]) -> str:
    known = relatives.get(job_id)
    return job_id if known is None else f"{job_id} ({known.status})"


def _dependents_line(job: JobInfo, dependents: list[JobInfo]) -> str:
    """What the job's ending did (or will do) to the jobs that wait for it."""
    listed = ", ".join(f"{d.job_id} ({d.status})" for d in dependents)
    if job.status is JobStatus.COMPLETED:
        unblocked = [
            d
            for d in dependents
            if job.job_id not in d.waiting_for and d.status is not JobStatus.WAITING
        ]
        return f"it unblocked {len(unblocked)} of its {len(dependents)} dependent(s): {listed}"
    if job.status.is_terminal:
        return f"its {len(dependents)} dependent(s) were told it {job.status}: {listed}"
    return f"{len(dependents)} job(s) wait for it: {listed}"


def _why_enqueued(history: Sequence[AnyEvent]) -> str | None:
    last = history[-1] if history else None
    match last:
        case Failed(error=error, retry_at=retry_at) if retry_at is not None:
            return f"its last attempt failed ({error}); the retry is delayed with backoff"
        case Expired():
            return "its last lease expired before an acknowledgement (a failed attempt)"
        case Released(at=at):
            return f"its worker gave it back unfinished at {_time(at)} (not counted)"
        case Requeued(at=at):
            return f"an operator requeued it at {_time(at)} with fresh attempts"
        case ParentFinished(parent_id=parent_id):
            return f"its last parent, {parent_id}, ended at {_time(last.at)}: it may run"
        case Enqueued():
            return "it has not been leased yet"
    return None


def _deploy_hold(history: Sequence[AnyEvent]) -> str | None:
    """What the latest give-back that said why (a deploy hold) said, while no attempt
    has ended since: workers without this job's code give it back until `until`."""
    holds: list[Released] = []
    for event in reversed(history):
        if isinstance(event, Released) and event.reason is not None:
            holds.append(event)
        elif not isinstance(event, (Released, Leased, Heartbeat)):
            break
    if not holds:
        return None
    latest = holds[0]
    text = f"{latest.reason}; given back {len(holds)} time(s), last at {_time(latest.at)}"
    if latest.until is not None:
        text += f"; held until {_time(latest.until)}, then it fails for good"
    return text


def _last(history: Sequence[AnyEvent], kind: type[E]) -> E | None:
    for event in reversed(history):
        if isinstance(event, kind):
            return event
    return None


def _time(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def _last_progress(history: Sequence[AnyEvent]) -> Heartbeat | None:
    """The latest heartbeat of the current attempt that reported progress."""
    for event in reversed(history):
        if isinstance(event, Leased):
            return None
        if isinstance(event, Heartbeat) and event.progress is not None:
            return event
    return None
