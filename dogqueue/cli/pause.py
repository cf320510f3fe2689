"""`dogqueue pause` and `dogqueue resume`: stop and restart leasing from a queue, for one
tenant or (an administrator's) for every tenant, as control events in the log; and the
same decisions for schedules (`dogqueue schedules pause|resume|run-now`, which
`dogqueue.cli.schedules` hands here)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from dogqueue import controls
from dogqueue.backend.contract import Backend
from dogqueue.cli._common import EXIT_ERROR, EXIT_OK, db_of, guarded, say
from dogqueue.cli.act import actor_of, add_db_default, open_db
from dogqueue.core.message import QueueCtx
from dogqueue.display import visible

#: What each command does: (the call, what it did, what it found instead).
Control = Callable[..., Awaitable[bool]]
QUEUE_COMMANDS: dict[str, tuple[Control, str, str]] = {
    "pause": (controls.pause_queue, "paused", "was paused already"),
    "resume": (controls.resume_queue, "resumed", "was not paused"),
}
SCHEDULE_COMMANDS: dict[str, tuple[Control, str, str]] = {
    "pause": (controls.pause_schedule, "paused", "was paused already"),
    "resume": (controls.resume_schedule, "resumed", "was not paused"),
    "run-now": (controls.run_schedule_now, "asked a worker to run", ""),
}


def add_scope(parser: argparse.ArgumentParser) -> None:
    """--tenant or --all-tenants, and --actor."""
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--tenant", help="the tenant whose queue or schedule it is")
    scope.add_argument(
        "--all-tenants",
        action="store_true",
        help="for every tenant at once (an administrator's decision, kept on its own stream)",
    )
    parser.add_argument("--actor", help="who to record as deciding it (default: cli:LOGIN)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add pause and resume."""
    for name, (_, done, _) in QUEUE_COMMANDS.items():
        parser = subparsers.add_parser(
            name,
            help=f"{name} a queue of a tenant (or of every tenant)",
            description=f"{name.capitalize()} a queue: recorded as an event in the log;"
            " every worker sees it within 2 seconds (stops or starts leasing from the queue;"
            " jobs already running finish). Doing it twice changes nothing.",
        )
        add_db_default(parser)
        parser.add_argument("--queue", required=True, help=f"the queue to have {done}")
        add_scope(parser)
        parser.set_defaults(run=guarded(_queue_command), control=name)


def _scope(args: argparse.Namespace, command: str) -> QueueCtx | None:
    if args.all_tenants:
        return controls.ALL_TENANTS_CTX
    if args.tenant:
        return QueueCtx(args.tenant)
    say(f"dogqueue {command}: name a tenant with --tenant, or pass --all-tenants", file=sys.stderr)
    return None


def _queue_command(args: argparse.Namespace) -> int:
    call, done, unchanged = QUEUE_COMMANDS[args.control]
    ctx = _scope(args, args.control)
    if ctx is None:
        return EXIT_ERROR
    return asyncio.run(
        _decide(args, call, ctx, args.queue, f"queue {visible(args.queue)!r}", done, unchanged)
    )


def schedule_command(args: argparse.Namespace, command: str, names: list[str]) -> int:
    """`dogqueue schedules pause|resume|run-now NAME...`."""
    call, done, unchanged = SCHEDULE_COMMANDS[command]
    ctx = _scope(args, f"schedules {command}")
    if ctx is None:
        return EXIT_ERROR
    if not names:
        say(f"dogqueue schedules {command}: name at least one schedule", file=sys.stderr)
        return EXIT_ERROR
    code = EXIT_OK
    for name in names:
        what = f"schedule {visible(name)!r}"
        code = max(code, asyncio.run(_decide(args, call, ctx, name, what, done, unchanged)))
    return code


async def _decide(
    args: argparse.Namespace,
    call: Control,
    ctx: QueueCtx,
    subject: str,
    what: str,
    done: str,
    unchanged: str,
) -> int:
    actor = actor_of(args)
    whose = (
        "every tenant" if ctx == controls.ALL_TENANTS_CTX else f"tenant {visible(ctx.tenant_id)!r}"
    )
    backend: Backend
    async with open_db(db_of(args)) as backend:
        if await call(backend, ctx, subject, actor=actor):
            say(f"{done} {what} of {whose}, recorded as {visible(actor)}")
        else:
            say(f"{what} of {whose} {unchanged}: nothing changed")
    return EXIT_OK
