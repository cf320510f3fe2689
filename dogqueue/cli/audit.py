"""Audit commands: verify, checkpoint, replay and archive."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path

from dogqueue.audit.checkpoint import dump_checkpoint, load_checkpoint, take_checkpoint
from dogqueue.audit.replay import ReplayResult, replay
from dogqueue.audit.verify import Report, is_archive, verify_archive, verify_log
from dogqueue.backend import locate
from dogqueue.backend.kit.archival import ArchiveResult
from dogqueue.cli._common import (
    EXIT_BAD_LOG,
    EXIT_OK,
    add_db,
    guarded,
    parse_time,
    read_log,
    say,
)
from dogqueue.cli._progress import progress_bar
from dogqueue.clock import utc_now
from dogqueue.core.errors import InvalidInput
from dogqueue.log.archive import ArchiveCut, archive_cuts
from dogqueue.log.chain import AUDIT_KEY_ENV, read_audit_key
from dogqueue.log.reader import LogReader


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add verify, checkpoint, replay and archive."""
    verify = subparsers.add_parser(
        "verify",
        help="check that the log was not tampered with and the projections are right",
        description="Recompute every event's hash chain, check that no log position is"
        " missing, fold the log and compare it with the stored job states, check the"
        " committed events not yet given a position (PostgreSQL), and run the storage's"
        " integrity check. The log is read, never written. With --checkpoint, also check"
        " that the log still contains the heads written down by `dogqueue checkpoint`"
        " (this catches a truncated or wholly rewritten log). Prints the first bad log"
        " position and exits with 1 if anything is wrong, 0 if the log is sound.",
    )
    add_db(verify)
    verify.add_argument(
        "--checkpoint", metavar="FILE", help="a checkpoint file from `dogqueue checkpoint`"
    )
    verify.add_argument(
        "--archive",
        metavar="FILE",
        action="append",
        default=[],
        help="an archive file of this log: its events fill the positions archival moved"
        " out, so chains and checkpoints are checked across both files, and the file must"
        " match an archival the log recorded (repeatable; an archive named by the log and"
        " sitting next to a SQLite file is found without it). A moved position that no"
        " archive holds fails verification",
    )
    verify.add_argument(
        "--key-file",
        metavar="FILE",
        help="the audit key the log is written with (default: the file"
        f" ${AUDIT_KEY_ENV} names): with it, events appended or rechained by anyone"
        " without the key are found even after the last checkpoint",
    )
    verify.set_defaults(run=guarded(_verify))

    checkpoint = subparsers.add_parser(
        "checkpoint",
        help="write the log's current chain heads, to keep outside the database",
        description="Write the last log position and each tenant's chain head (position and"
        " hash) as JSON. Keep it somewhere the database's owner cannot rewrite; later,"
        " `dogqueue verify --checkpoint FILE` proves the log still extends it. Run"
        " `dogqueue verify` first if you do not already trust the log.",
    )
    add_db(checkpoint)
    checkpoint.add_argument(
        "--out", metavar="FILE", help="write to this file instead of standard output"
    )
    checkpoint.set_defaults(run=guarded(_checkpoint))

    replay_cmd = subparsers.add_parser(
        "replay",
        help="rebuild every job's state from the log and compare it with the stored one",
        description="Fold the whole log from the first event, showing progress and the speed"
        " in events per second, and compare the result with the stored projection. Exits"
        " with 1 if they differ; add --fix to replace the stored projection with the replay.",
    )
    add_db(replay_cmd)
    replay_cmd.add_argument(
        "--fix",
        action="store_true",
        help="if the stored projection differs, replace it with the fold of the log"
        " (this writes: it opens the queue's backend)",
    )
    replay_cmd.set_defaults(run=guarded(_replay))

    archive = subparsers.add_parser(
        "archive",
        help="move finished jobs' histories to an archive file",
        description="Move every job that finished (completed, failed or canceled) before"
        " --before, with all its events, from the live database into the archive FILE"
        " (created or appended to). The live log keeps a record of the cut so both files"
        " still verify; archived histories stay readable with `history --archive FILE`."
        " Idempotency keys of archived jobs are released: the same key can enqueue a new job."
        " SQLite logs and Redis queues (the archive is a SQLite file either way);"
        " not PostgreSQL.",
    )
    add_db(archive, writes=True)
    archive.add_argument(
        "--before",
        required=True,
        type=parse_time,
        metavar="DATE",
        help="archive jobs that finished before this date or time (ISO 8601, UTC if no zone)",
    )
    archive.add_argument("--to", required=True, metavar="FILE", help="the archive database file")
    archive.set_defaults(run=guarded(_archive))


def _print_report(name: str, report: Report) -> None:
    if report.ok:
        say(
            f"{name}: OK, {report.events} events, {len(report.jobs)} jobs,"
            f" {len(report.heads)} tenant chain(s)"
            + (f", {report.waiting} event(s) waiting for a position" if report.waiting else "")
        )
        return
    first = report.first_bad_seq
    say(f"{name}: FAILED" + ("" if first is None else f", first bad position: {first}"))
    for problem in sorted(report.problems, key=lambda p: (p.seq is None, p.seq or 0)):
        where = "" if problem.seq is None else f"[{problem.seq}] "
        say(f"  {where}{problem.what}")


def _verify(args: argparse.Namespace) -> int:
    checkpoint = None
    if args.checkpoint:
        try:
            text = Path(args.checkpoint).read_text("utf-8")
        except OSError as error:
            raise InvalidInput("checkpoint", f"cannot be read: {error}") from error
        checkpoint = load_checkpoint(text)

    key = read_audit_key(args.key_file)

    async def run(log: LogReader) -> bool:
        # An archive file given as --db is verified on its own.
        if await is_archive(log):
            report = await verify_archive(log, audit_key=key)
            _print_report(args.db, report)
            return report.ok
        paths = _archive_paths(args.db, args.archive, await archive_cuts(log))
        archives = [locate.open_log(path) for path in paths]
        try:
            report = await verify_log(log, checkpoint=checkpoint, archives=archives, audit_key=key)
            _print_report(args.db, report)
            ok = report.ok
            for path, archive in zip(paths, archives, strict=True):
                archived = await verify_archive(archive, log, audit_key=key)
                _print_report(path, archived)
                ok = ok and archived.ok
        finally:
            for archive in archives:
                await archive.close()
        return ok

    return EXIT_OK if read_log(args.db, run) else EXIT_BAD_LOG


def _archive_paths(db: str, given: list[str], cuts: list[ArchiveCut]) -> list[str]:
    """The archives to verify with the live log: those given, and each archive its
    archivals (`cuts`) name that sits next to a SQLite log file."""
    paths = list(given)
    known = {os.path.realpath(path) for path in paths}
    for cut in cuts:
        if locate.is_server_url(db):  # a server's cuts name the archive's absolute path
            if not os.path.isabs(str(cut.archive)):
                continue
            candidate = str(cut.archive)
        else:
            candidate = os.path.join(os.path.dirname(os.path.abspath(db)), str(cut.archive))
        if os.path.realpath(candidate) not in known and os.path.isfile(candidate):
            known.add(os.path.realpath(candidate))
            paths.append(candidate)
    return paths


def _checkpoint(args: argparse.Namespace) -> int:
    checkpoint = read_log(args.db, take_checkpoint)
    text = dump_checkpoint(checkpoint)
    if args.out:
        try:
            Path(args.out).write_text(text, "utf-8")
        except OSError as error:
            raise InvalidInput("out", f"cannot be written: {error}") from error
        say(
            f"checkpoint of {len(checkpoint.heads)} tenant chain(s) up to position"
            f" {checkpoint.seq} written to {args.out}",
            file=sys.stderr,
        )
    else:
        say(text, end="")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    async def run(log: LogReader) -> ReplayResult:
        with progress_bar("replaying", await log.last_position()) as update:
            return await replay(log, update)

    result = read_log(args.db, run)
    say(
        f"replayed {result.events} events into {result.jobs} jobs in {result.seconds:.2f} s"
        f" ({result.events_per_second:,.0f} events/s)"
    )
    if not result.differing:
        say("the stored projection equals the fold of the log")
        return EXIT_OK
    say(f"{len(result.differing)} job(s) differ from the fold of the log, e.g.:")
    for tenant_id, job_id in result.differing[:10]:
        say(f"  tenant {tenant_id!r} job {job_id!r}")
    if not args.fix:
        say("run again with --fix to replace the stored projection with the replay")
        return EXIT_BAD_LOG
    folded = asyncio.run(_rebuild(args.db))
    say(f"stored projection rebuilt from {folded} events")
    return EXIT_OK


async def _rebuild(db: str) -> int:
    async with locate.open_backend(db) as backend:
        return await backend.rebuild_projections()


async def _archive_redis(url: str, to: str, before: datetime) -> ArchiveResult:
    from dogqueue.backend.redis_archive import archive_before

    plain, prefix, cluster = locate.redis_queue(url)
    return await archive_before(plain, to, before, utc_now(), prefix=prefix, cluster=cluster)


def _archive(args: argparse.Namespace) -> int:
    if locate.is_postgres_url(args.db):
        raise InvalidInput("db", "archival works on SQLite logs and Redis queues only")
    if locate.is_redis_url(args.db):
        result = asyncio.run(_archive_redis(args.db, args.to, args.before))
    else:
        from dogqueue.backend.sqlite.archive import archive_before

        result = archive_before(args.db, args.to, args.before, utc_now())
    if not result.jobs:
        say(f"no job finished before {args.before.isoformat()}; nothing archived")
        return EXIT_OK
    say(f"archived {result.jobs} job(s), {result.events} event(s) to {result.archive}")
    say(
        "their idempotency keys are released; read them with"
        f" `dogqueue history --db {args.db} --archive {result.archive} --tenant T JOB_ID`"
    )
    return EXIT_OK
