"""`dogqueue schedules`: each schedule's last tick (from the log) and next tick."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

import msgspec

from dogqueue.cli._common import (
    EXIT_ERROR,
    EXIT_OK,
    add_db,
    guarded,
    parse_time,
    read_log,
    say,
    table,
    when,
)
from dogqueue.cli.pause import SCHEDULE_COMMANDS, add_scope, schedule_command
from dogqueue.cli.worker import schedules_option
from dogqueue.clock import utc_now
from dogqueue.core import cron
from dogqueue.core.job import JobInfo
from dogqueue.log.reader import LogReader
from dogqueue.schedules import Schedule


class TickSummary(msgspec.Struct, kw_only=True):
    """One schedule as the command shows it."""

    tenant: str
    schedule: str
    cron: str | None
    timezone: str | None
    ticks: int
    last_tick: datetime | None
    last_job_id: str | None
    last_status: str | None
    next_tick: datetime | None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `schedules`."""
    parser = subparsers.add_parser(
        "schedules",
        help="list schedules: last tick enqueued (from the log) and next tick",
        description="List every schedule whose ticks the log holds, with its newest tick,"
        " that tick's job and status, and how many ticks were enqueued. Given SCHEDULES"
        " (MODULE:ATTRIBUTE naming a list of dogqueue.Schedule, or MODULE for its"
        " SCHEDULES), also each one's cron expression, time zone and next tick, and those"
        " with no tick yet. The current directory is on the import path."
        " `dogqueue schedules pause|resume|run-now NAME... --tenant T` pauses or resumes"
        " schedules, or asks a worker serving them to run their job once now: recorded as"
        " events in the log, seen by workers within a second or two.",
    )
    add_db(parser)
    parser.add_argument(
        "schedules",
        metavar="SCHEDULES",
        nargs="?",
        help="MODULE[:ATTRIBUTE], or one of " + ", ".join(SCHEDULE_COMMANDS),
    )
    parser.add_argument("names", metavar="NAME", nargs="*", help="with a command: schedules")
    add_scope(parser)
    parser.add_argument(
        "--now",
        type=parse_time,
        help="give next ticks after this time (ISO 8601; default: the current time)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per schedule")
    parser.set_defaults(run=guarded(_schedules))


def _schedules(args: argparse.Namespace) -> int:
    if args.schedules in SCHEDULE_COMMANDS:
        return schedule_command(args, args.schedules, args.names)
    if args.names or args.all_tenants or args.actor:
        say(
            "dogqueue schedules: NAME, --all-tenants and --actor go with a command", file=sys.stderr
        )
        return EXIT_ERROR
    defined = schedules_option("schedules", args.schedules)
    if defined is None:
        return EXIT_ERROR

    async def read(log: LogReader) -> list[JobInfo]:
        return await log.jobs(args.tenant)

    summaries = summarize(read_log(args.db, read), defined, args.now or utc_now())
    if args.tenant is not None:
        summaries = [s for s in summaries if s.tenant == args.tenant]
    if args.json:
        for summary in summaries:
            say(json.dumps(msgspec.to_builtins(summary)))
        return EXIT_OK
    rows = [
        [
            s.tenant,
            s.schedule,
            s.cron or "-",
            s.timezone or "-",
            str(s.ticks),
            when(s.last_tick),
            s.last_job_id or "-",
            s.last_status or "-",
            when(s.next_tick),
        ]
        for s in summaries
    ]
    header = ["tenant", "schedule", "cron", "timezone", "ticks", "last_tick", "last_job"]
    say(table(rows, [*header, "status", "next_tick"]))
    return EXIT_OK


def summarize(jobs: list[JobInfo], defined: list[Schedule], now: datetime) -> list[TickSummary]:
    """One summary per schedule found in `jobs` (by its keys) or in `defined`, sorted by
    tenant and name."""
    newest: dict[tuple[str, str], tuple[datetime, JobInfo]] = {}
    counts: dict[tuple[str, str], int] = {}
    for job in jobs:
        key = job.message.idempotency_key
        name = cron.schedule_name_of_key(key)
        tick = None if name is None else cron.tick_of_key(name, key)
        if name is None or tick is None:
            continue
        identity = (job.tenant_id, name)
        counts[identity] = counts.get(identity, 0) + 1
        if identity not in newest or tick > newest[identity][0]:
            newest[identity] = (tick, job)
    by_identity = {(s.tenant, s.name): s for s in defined}
    summaries = []
    for identity in sorted(set(newest) | set(by_identity)):
        schedule = by_identity.get(identity)
        last = newest.get(identity)
        summaries.append(
            TickSummary(
                tenant=identity[0],
                schedule=identity[1],
                cron=None if schedule is None else schedule.cron,
                timezone=None if schedule is None else schedule.timezone,
                ticks=counts.get(identity, 0),
                last_tick=None if last is None else last[0],
                last_job_id=None if last is None else last[1].job_id,
                last_status=None if last is None else last[1].status.value,
                next_tick=None if schedule is None else schedule.next_tick(now),
            )
        )
    return summaries


__all__ = ["TickSummary", "register", "summarize"]
