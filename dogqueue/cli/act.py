"""Commands that change jobs: cancel, retry and requeue, by job id or by filter.

Each change goes through the Backend contract and is recorded in the log with who made
it (`--actor`, by default `cli:` and the login name). `--dry-run` prints what would
change; more than one job needs a confirmation (or `--yes`); acting on every tenant
needs `--all-tenants`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from dogqueue.backend.browse import MAX_PAGE, JobFilter, all_matching
from dogqueue.backend.contract import Backend
from dogqueue.cli._common import EXIT_ERROR, EXIT_OK, guarded, parse_time, say
from dogqueue.core.errors import InvalidInput, InvalidTransition, JobNotFound
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.display import visible

#: Exit code when some selected jobs could not be changed.
EXIT_PARTIAL = 1


@dataclass(frozen=True)
class Action:
    """One acting command: which statuses it can change and what it turns them into."""

    name: str
    verb: str
    eligible: frozenset[JobStatus]
    becomes: JobStatus
    help: str


ACTIONS = (
    Action(
        "cancel",
        "cancel",
        frozenset({JobStatus.ENQUEUED, JobStatus.LEASED, JobStatus.WAITING}),
        JobStatus.CANCELED,
        "cancel waiting or running jobs (and jobs waiting for their parents)",
    ),
    Action(
        "retry",
        "retry",
        frozenset({JobStatus.FAILED}),
        JobStatus.ENQUEUED,
        "put failed jobs (dead letters) back in the queue with fresh attempts",
    ),
    Action(
        "requeue",
        "requeue",
        frozenset({JobStatus.FAILED, JobStatus.CANCELED}),
        JobStatus.ENQUEUED,
        "put failed and canceled jobs back in the queue with fresh attempts",
    ),
)


def open_db(db: str) -> Backend:
    """The backend of the queue at `db`: a SQLite file, which must exist, or a
    postgresql:// or redis:// URL."""
    from dogqueue.backend import locate

    if not locate.is_server_url(db) and not os.path.exists(db):
        raise InvalidInput("db", f"no queue database at {db!r}")
    return locate.open_backend(db)


def add_db_default(parser: argparse.ArgumentParser) -> None:
    """--db, defaulting to $DOGQUEUE_DB."""
    default = os.environ.get("DOGQUEUE_DB")
    parser.add_argument(
        "--db",
        required=default is None,
        default=default,
        metavar="PATH|URL",
        help="the queue: a SQLite file or a postgresql:// URL (default: $DOGQUEUE_DB)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add cancel, retry and requeue."""
    for action in ACTIONS:
        parser = subparsers.add_parser(
            action.name,
            help=action.help,
            description=f"{action.help[0].upper()}{action.help[1:]}: the jobs named by id,"
            " or every job matching the filters. Only jobs that are "
            + " or ".join(sorted(action.eligible))
            + " are changed.",
        )
        add_db_default(parser)
        parser.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="jobs to change")
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--tenant", help="the tenant whose jobs to change")
        scope.add_argument("--all-tenants", action="store_true", help="select jobs of every tenant")
        parser.add_argument("--type", dest="job_type", help="only jobs of this type")
        parser.add_argument("--queue", help="only jobs in this queue")
        parser.add_argument(
            "--status",
            action="append",
            choices=sorted(action.eligible),
            help="only jobs in this status (repeatable)",
        )
        parser.add_argument(
            "--created-after", type=parse_time, metavar="WHEN", help="only jobs created since"
        )
        parser.add_argument(
            "--created-before", type=parse_time, metavar="WHEN", help="only jobs created before"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would change and change nothing"
        )
        parser.add_argument(
            "-y", "--yes", action="store_true", help="change several jobs without asking"
        )
        parser.add_argument(
            "--actor", help="who to record as making the change (default: cli:LOGIN)"
        )
        parser.set_defaults(run=guarded(_run), action=action)


def actor_of(args: argparse.Namespace) -> str:
    """Who a changing command records as acting: `--actor`, else cli:LOGIN."""
    if args.actor:
        return str(args.actor)
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _run(args: argparse.Namespace) -> int:
    action: Action = args.action
    if not args.tenant and not args.all_tenants:
        say(
            f"dogqueue {action.name}: name a tenant with --tenant, or pass --all-tenants",
            file=sys.stderr,
        )
        return EXIT_ERROR
    statuses = frozenset(JobStatus(s) for s in args.status) if args.status else action.eligible
    filters = JobFilter(
        statuses=statuses,
        job_type=args.job_type,
        queue=args.queue,
        created_after=args.created_after,
        created_before=args.created_before,
    )
    return asyncio.run(_act(args, action, filters))


async def _act(args: argparse.Namespace, action: Action, filters: JobFilter) -> int:
    async with open_db(args.db) as backend:
        tenant: str | None = None if args.all_tenants else args.tenant
        if tenant is not None and not await _tenant_exists(backend, tenant):
            say(
                f"dogqueue {action.name}: no tenant {visible(tenant)!r} in this queue",
                file=sys.stderr,
            )
            return EXIT_ERROR
        if args.job_ids:
            jobs = await _named(backend, tenant, args.job_ids, filters)
        else:
            jobs = await all_matching(backend.browser(), tenant, filters)
        if not jobs:
            say(f"no jobs to {action.verb}")
            return EXIT_OK
        if args.dry_run:
            say(f"would {action.verb} {len(jobs)} job(s):")
            for job in jobs:
                say(f"  {_describe(job)} -> {action.becomes}")
            return EXIT_OK
        if len(jobs) > 1 and not args.yes:
            answer = _confirmed(action, len(jobs))
            if answer is not True:
                # "n" is an answer: nothing to do, done. No answer at all (stdin closed)
                # is a script that forgot --yes.
                say("nothing changed" if answer is False else "\nno answer: nothing changed")
                return EXIT_OK if answer is False else EXIT_ERROR
        return await _apply(backend, action, jobs, actor_of(args))


async def _tenant_exists(backend: Backend, tenant: str) -> bool:
    overview = await backend.browser().tenant_overview(backend.clock())
    return any(summary.tenant_id == tenant for summary in overview)


async def _named(
    backend: Backend, tenant: str | None, job_ids: Sequence[str], filters: JobFilter
) -> list[JobInfo]:
    """The named jobs that filters allow; unknown ids are reported and skipped."""
    browser = backend.browser()
    jobs = []
    for job_id in job_ids:
        if tenant is None:
            page = await browser.list_jobs(None, JobFilter(search=job_id), None, MAX_PAGE)
            found = [job for job in page.jobs if job.job_id == job_id]
        else:
            try:
                found = [await backend.get_job(QueueCtx(tenant), job_id)]
            except (JobNotFound, InvalidInput):
                found = []
        if not found:
            say(f"no job {visible(job_id)!r}", file=sys.stderr)
        for job in found:
            if filters.matches(job):
                jobs.append(job)
            else:
                say(f"skipping {_describe(job)}", file=sys.stderr)
    return jobs


def _confirmed(action: Action, count: int) -> bool | None:
    """True for yes, False for no (or just Enter), None when stdin gave no answer."""
    say(f"{action.verb} {count} jobs? [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    if not answer:
        return None
    return answer.strip().lower() in ("y", "yes")


async def _apply(backend: Backend, action: Action, jobs: list[JobInfo], actor: str) -> int:
    refused = 0
    for job in jobs:
        ctx = QueueCtx(job.tenant_id)
        try:
            if action.name == "cancel":
                status = await backend.cancel_job(ctx, job.job_id, actor=actor)
            else:
                status = await backend.retry_job(
                    ctx,
                    job.job_id,
                    include_canceled=JobStatus.CANCELED in action.eligible,
                    actor=actor,
                )
        except InvalidTransition as error:
            refused += 1
            say(f"not changed: {_describe(job)}: {visible(str(error))}", file=sys.stderr)
            continue
        say(f"{action.verb}: {_describe(job)} -> {status}")
    changed = len(jobs) - refused
    say(f"{changed} of {len(jobs)} job(s) changed, recorded as {visible(actor)}")
    return EXIT_OK if refused == 0 else EXIT_PARTIAL


def _describe(job: JobInfo) -> str:
    return (
        f"{visible(job.job_id)} (tenant {visible(job.tenant_id)},"
        f" {visible(job.message.job_type)}, {job.status})"
    )
