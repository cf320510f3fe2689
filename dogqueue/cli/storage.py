"""`dogqueue migrate`: bring a queue's storage to this dogqueue's schema version, as its
owner, so that roles allowed only to read and write rows can open it. `dogqueue import`:
move a whole log into a new PostgreSQL schema."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from dogqueue.audit.verify import verify_log
from dogqueue.backend import locate
from dogqueue.cli._common import EXIT_BAD_LOG, EXIT_OK, add_db, guarded, say
from dogqueue.core.errors import InvalidInput, StorageError
from dogqueue.core.events import AnyEvent
from dogqueue.core.validation import check_name

#: Events read from the source per page.
PAGE = 10_000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add migrate."""
    migrate = subparsers.add_parser(
        "migrate",
        help="create or upgrade a queue's tables (run as the schema's owner)",
        description="Create the queue's schema and tables, or upgrade them to this"
        " dogqueue's version. Opening a queue does this too when the role may; a role"
        " allowed only to read and write rows opens a queue migrated beforehand.",
    )
    add_db(migrate, writes=True)
    migrate.set_defaults(run=guarded(_migrate))

    importing = subparsers.add_parser(
        "import",
        help="copy a whole log into a new PostgreSQL schema",
        description="Replay every event of SOURCE (a SQLite file or a postgresql:// URL)"
        " into TARGET, a postgresql:// URL: into its schema=NAME if given, which must be"
        " empty, else into a new schema named after the time. The events keep their bytes;"
        " the projection is rebuilt, every event numbered and the log verified before the"
        " command returns. Stop the source's workers first.",
    )
    importing.add_argument("--from", dest="source", required=True, metavar="SOURCE")
    importing.add_argument("--to", dest="target", required=True, metavar="TARGET")
    importing.set_defaults(run=guarded(_import))


def _migrate(args: argparse.Namespace) -> int:
    if locate.is_postgres_url(args.db):
        from dogqueue.backend.postgres.migrate import check_schema, migrate
        from dogqueue.backend.postgres.queries import SCHEMA_VERSION

        dsn, schema = locate.split_schema(args.db)
        schema = check_schema(check_name("schema", schema or "dogqueue"))
        found = asyncio.run(migrate(dsn, schema))
        if found == SCHEMA_VERSION:
            say(f"queue schema {schema!r} is at version {SCHEMA_VERSION}: nothing to do")
        else:
            say(f"queue schema {schema!r} migrated from version {found} to {SCHEMA_VERSION}")
        return EXIT_OK

    async def open_and_close() -> None:
        async with locate.open_backend(args.db):
            pass

    asyncio.run(open_and_close())
    say(f"queue {args.db!r} is at the current version")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    if not locate.is_postgres_url(args.target):
        raise InvalidInput("to", "must be a postgresql:// URL (schema=NAME picks the schema)")
    dsn, schema = locate.split_schema(args.target)
    if schema is None:
        schema = datetime.now(UTC).strftime("dogqueue_import_%Y%m%d_%H%M%S")
    report_ok, count = asyncio.run(_copy(args.source, dsn, schema))
    say(f"imported {count} events from {args.source!r} into schema {schema!r}")
    if not report_ok:
        say("dogqueue import: the imported log does not verify; run `dogqueue verify`")
        return EXIT_BAD_LOG
    say(f"verified: OK ({count} events, every one numbered)")
    return EXIT_OK


async def _read_all(source: str) -> list[AnyEvent]:
    """Every event of the source's log, in log order; refuses events still waiting for
    a position (their order is not settled yet)."""
    log = locate.open_log(source)
    try:
        waiting = await log.unsealed()
        if waiting:
            raise StorageError(
                f"{len(waiting)} event(s) of {source!r} are not numbered yet: open the"
                " queue once (any backend numbers them) or wait for its workers, then retry"
            )
        events: list[AnyEvent] = []
        while page := await log.events(after=events[-1].seq if events else 0, limit=PAGE):
            events.extend(page)
        return events
    finally:
        await log.close()


async def _copy(source: str, dsn: str, schema: str) -> tuple[bool, int]:
    from dogqueue.backend.postgres import PostgresBackend
    from dogqueue.backend.postgres.importing import import_events

    events = await _read_all(source)
    async with PostgresBackend(dsn, schema=schema) as target:
        count = await import_events(target, events)
        log = target.log_reader()
        report = await verify_log(log)
        waiting = await log.unsealed()
    return report.ok and not waiting, count
