"""Inspection commands: history, jobs, stats and explain. They read the log and its
projection, read-only; with --as-of they fold the log up to a past point instead.

Positions: with --tenant, every position shown or given (`seq`, --as-of N) is the
tenant's own; `stats` across every tenant uses log positions."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

import msgspec

from dogqueue.audit.api import explain_job, history_as_of, job_stats, jobs_at
from dogqueue.audit.explain import Explanation
from dogqueue.audit.timeline import Heartbeats, timeline
from dogqueue.audit.timetravel import AsOf
from dogqueue.cli._common import (
    EXIT_ERROR,
    EXIT_OK,
    add_as_of,
    add_db,
    guarded,
    parse_time,
    read_log,
    say,
    table,
    when,
)
from dogqueue.clock import utc_now
from dogqueue.core.errors import JobNotFound
from dogqueue.core.events import (
    AnyEvent,
    Completed,
    Enqueued,
    Expired,
    Failed,
    Leased,
    ParentFinished,
    Released,
)
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.retry import LEASE_EXPIRED_ERROR
from dogqueue.core.status import JobStatus
from dogqueue.display import moment, span
from dogqueue.log.reader import LogReader


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add history, jobs, stats and explain."""
    history = subparsers.add_parser(
        "history",
        help="print one job's events as a timeline",
        description="Print every event of one job, oldest first: when it happened, what"
        " happened, the attempt and lease token it concerned, the error, and any delay"
        " (schedule or retry backoff).",
    )
    add_db(history)
    history.add_argument("--tenant", required=True, help="the tenant the job belongs to")
    history.add_argument("job_id", metavar="JOB_ID", help="the job's id (from `dogqueue jobs`)")
    history.add_argument(
        "--json", action="store_true", help="print one JSON object per event instead"
    )
    history.add_argument(
        "--archive",
        metavar="FILE",
        help="read the job from an archive file written by `dogqueue archive`",
    )
    add_as_of(history)
    history.set_defaults(run=guarded(_history))

    jobs = subparsers.add_parser(
        "jobs",
        help="list jobs (of one tenant, or of every tenant for an operator)",
        description="List jobs in the order they were enqueued, with their tenant,"
        " status, queue, type, attempts and next run time. Filters combine.",
    )
    add_db(jobs)
    jobs.add_argument("--tenant", help="whose jobs to list (default: every tenant)")
    jobs.add_argument(
        "--status", choices=[s.value for s in JobStatus], help="only jobs in this status"
    )
    jobs.add_argument("--queue", help="only jobs of this queue")
    jobs.add_argument("--type", dest="job_type", help="only jobs of this job type")
    jobs.add_argument(
        "--limit", type=int, default=50, help="list at most this many jobs (default 50)"
    )
    jobs.add_argument("--json", action="store_true", help="print one JSON object per job")
    add_as_of(jobs)
    jobs.set_defaults(run=guarded(_jobs))

    stats = subparsers.add_parser(
        "stats",
        help="count jobs by status, queue and type",
        description="Count jobs by status, by queue and by job type, and show how long the"
        " oldest ready job has been waiting (its age since it became due).",
    )
    add_db(stats)
    stats.add_argument("--tenant", help="only this tenant's jobs (default: every tenant)")
    stats.add_argument("--json", action="store_true", help="print the counts as JSON")
    add_as_of(stats)
    stats.set_defaults(run=guarded(_stats))

    why = subparsers.add_parser(
        "explain",
        help="say in plain words why a job is where it is",
        description="Explain one job's situation: when it is scheduled for, who holds its"
        " lease and until when, how many jobs are ahead of it in its queue, why it"
        " failed, or when it was canceled or completed and how long it took.",
    )
    add_db(why)
    why.add_argument("--tenant", required=True, help="the tenant the job belongs to")
    why.add_argument("job_id", metavar="JOB_ID", help="the job's id")
    why.add_argument(
        "--now",
        type=parse_time,
        help="explain as if it were this time (ISO 8601; default: the current time)",
    )
    add_as_of(why)
    why.set_defaults(run=guarded(_explain))


# -- history -----------------------------------------------------------------------------


def _history(args: argparse.Namespace) -> int:
    ctx = QueueCtx(args.tenant)

    async def read(log: LogReader) -> list[AnyEvent]:
        return await history_as_of(log, ctx, args.job_id, args.as_of)

    events = read_log(args.archive or args.db, read)
    if not events:
        say(
            f"dogqueue history: no job {args.job_id!r} in tenant {args.tenant!r}"
            f"{' at that point' if not args.as_of.is_now else ''}"
        )
        return EXIT_ERROR
    if args.json:
        for event in events:
            say(json.dumps(msgspec.to_builtins(event)))  # ASCII: C1 codes as \u escapes
        return EXIT_OK
    rows, errors = history_rows(events)
    say(table(rows, ["seq", "time", "event", "attempt", "token", "error", "delay"]))
    for error in errors:
        say()
        say(error)
    waiting = sum(1 for event in events if event.seq == 0)
    if waiting:  # PostgreSQL numbers events after they commit
        say(
            f"{waiting} event(s) committed but not numbered yet (seq -): the next"
            " sequencer step of any open backend on this queue numbers them"
        )
    return EXIT_OK


def history_rows(events: list[AnyEvent]) -> tuple[list[list[str]], list[str]]:
    """One row per event (a run's heartbeats folded into one): its (tenant) position,
    time to the millisecond, event, run, lease token, the first line of its error, delay;
    and each failed run's whole error, preformatted, to print below the table."""
    rows, errors = [], []
    waiting: tuple[str, ...] = ()
    for row in timeline(events):
        event = row.event
        error = delay = ""
        token = getattr(event.last if isinstance(event, Heartbeats) else event, "token", None)
        match event:
            case Heartbeats(last=last):
                delay = f"{event}; lease until {moment(last.expires_at)}"
            case Enqueued(message=message, waiting_for=waiting):
                if message.run_at is not None and message.run_at > event.at:
                    later = span(message.run_at - event.at)
                    delay = f"scheduled for {moment(message.run_at)} (in {later})"
                if waiting:
                    delay = _parents_left(waiting, message.after, delay)
            case ParentFinished(parent_id=parent, parent_status=status, reason=reason):
                waiting = tuple(p for p in waiting if p != parent)
                if status != JobStatus.COMPLETED.value:
                    error = f"parent {parent} {status}" + (f": {reason}" if reason else "")
                left = f"{len(waiting)} parent(s) left" if waiting else "no parent left"
                delay = f"parent {parent} {status}; {left}"
            case Leased(expires_at=expires_at):
                delay = f"lease until {moment(expires_at)}"
            case Failed(error=message, retry_at=retry_at):
                error = message
                delay = _retry(event.at, retry_at)
                if "\n" in message.strip():
                    errors.append(f"run {row.run} failed at {moment(event.at)}:\n{message}")
            case Expired(retry_at=retry_at):
                error = LEASE_EXPIRED_ERROR
                delay = _retry(event.at, retry_at)
            case Released():
                delay = "given back unfinished: not a run"
            case Completed():
                pass
        seq = (
            f"{event.first.seq}-{event.last.seq}"
            if isinstance(event, Heartbeats)
            else (str(event.seq) if event.seq else "-")
        )
        rows.append(
            [
                seq,
                moment(row.at),
                row.kind,
                str(row.run) if token is not None else "-",
                "-" if token is None else str(token),
                error or "-",
                delay or "-",
            ]
        )
    return rows, errors


def _parents_left(waiting: tuple[str, ...], parents: tuple[str, ...], delay: str) -> str:
    left = f"waiting for {len(waiting)} of {len(parents)} parents: {', '.join(waiting)}"
    return f"{delay}; {left}" if delay else left


def _retry(at: datetime, retry_at: datetime | None) -> str:
    if retry_at is None:
        return "final: no retry"
    return f"retry at {moment(retry_at)} (in {span(retry_at - at)})"


# -- jobs and stats ----------------------------------------------------------------------


def _jobs_at(db: str, tenant_id: str | None, as_of: AsOf) -> list[JobInfo]:
    if tenant_id is not None:
        QueueCtx(tenant_id)  # checks the name

    async def read(log: LogReader) -> list[JobInfo]:
        return await jobs_at(log, tenant_id, as_of)

    return read_log(db, read)


def _jobs(args: argparse.Namespace) -> int:
    found = [
        job
        for job in _jobs_at(args.db, args.tenant, args.as_of)
        if (args.status is None or job.status == args.status)
        and (args.queue is None or job.message.queue == args.queue)
        and (args.job_type is None or job.message.job_type == args.job_type)
    ]
    if args.tenant is not None and not found and not _tenant_exists(args.db, args.tenant):
        say(f"dogqueue jobs: no tenant {args.tenant!r} in this log", file=sys.stderr)
        return EXIT_ERROR
    shown = found[: max(args.limit, 0)]
    if args.json:
        for job in shown:
            say(json.dumps(_job_summary(job)))
        return EXIT_OK
    rows = [
        [
            job.tenant_id,
            job.job_id,
            job.status.value,
            job.message.queue,
            job.message.job_type,
            str(job.attempts),
            when(job.run_at) if job.status is JobStatus.ENQUEUED else "-",
            when(job.updated_at),
        ]
        for job in shown
    ]
    header = ["tenant", "job_id", "status", "queue", "type", "attempts", "run_at", "updated"]
    say(table(rows, header))
    if len(found) > len(shown):
        say(f"... {len(found) - len(shown)} more (raise --limit to see them)")
    return EXIT_OK


def _tenant_exists(db: str, tenant_id: str) -> bool:
    """Whether the log holds any event of the tenant (now, whatever the --as-of)."""

    async def read(log: LogReader) -> bool:
        return bool(await log.jobs(tenant_id)) or bool(await log.tenant_events(tenant_id))

    return read_log(db, read)


def _job_summary(job: JobInfo) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "tenant_id": job.tenant_id,
        "status": job.status.value,
        "queue": job.message.queue,
        "type": job.message.job_type,
        "priority": int(job.message.priority),
        "attempts": job.attempts,
        "run_at": job.run_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "last_error": job.last_error,
    }


def _stats(args: argparse.Namespace) -> int:
    jobs = _jobs_at(args.db, args.tenant, args.as_of)
    now = args.as_of.at or (
        max((j.updated_at for j in jobs), default=utc_now())
        if args.as_of.seq is not None
        else utc_now()
    )
    stats = job_stats(jobs, now)
    if args.json:
        say(json.dumps(stats))
        return EXIT_OK
    say(f"jobs: {stats['jobs']}" + (f" (tenant {args.tenant})" if args.tenant else ""))
    for title, key in (
        ("by status", "by_status"),
        ("by queue", "by_queue"),
        ("by type", "by_type"),
    ):
        say(f"{title}:")
        for name, count in stats[key].items():
            say(f"  {name:<24} {count}")
    age = stats["oldest_ready_age_seconds"]
    say("oldest ready job: " + ("none ready" if age is None else f"waiting {age:.1f} s"))
    return EXIT_OK


# -- explain -----------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    ctx = QueueCtx(args.tenant)

    async def read(log: LogReader) -> Explanation | None:
        try:
            return await explain_job(log, ctx, args.job_id, as_of=args.as_of, now=args.now)
        except JobNotFound:
            return None

    explanation = read_log(args.db, read)
    if explanation is None:
        say(f"dogqueue explain: no job {args.job_id!r} in tenant {args.tenant!r}")
        return EXIT_ERROR
    say(str(explanation))
    return EXIT_OK
