"""`dogqueue migrate`: bring a queue's storage to this dogqueue's schema version, as its
owner, so that roles allowed only to read and write rows can open it. `dogqueue import`:
move a whole log into a new or empty queue of any backend."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from dogqueue.backend import locate
from dogqueue.cli._common import EXIT_BAD_LOG, EXIT_OK, add_db, guarded, say
from dogqueue.core.validation import check_name


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
        help="copy a whole log into a new or empty queue (any backend)",
        description="Replay every event of SOURCE (a SQLite file, a postgresql:// or a"
        " redis:// URL) into TARGET, a new or empty queue: a SQLite file, a redis:// URL"
        " (its prefix=NAME) or a postgresql:// URL (its schema=NAME if given, else a new"
        " schema named after the time). The events keep their bytes and order; the"
        " projection is rebuilt, every event numbered and the log verified before the"
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
    from dogqueue.transfer import import_log

    target = args.target
    if locate.is_postgres_url(target) and locate.split_schema(target)[1] is None:
        schema = datetime.now(UTC).strftime("dogqueue_import_%Y%m%d_%H%M%S")
        target += ("&" if "?" in target else "?") + f"schema={schema}"
    imported = asyncio.run(import_log(args.source, target))
    say(f"imported {imported.events} events from {args.source!r} into {_place(target)}")
    if not imported.report.ok:
        say("dogqueue import: the imported log does not verify; run `dogqueue verify`")
        return EXIT_BAD_LOG
    say(f"verified: OK ({imported.events} events, every one numbered)")
    return EXIT_OK


def _place(target: str) -> str:
    """The target as the import's summary names it (a schema by name, never a URL,
    which may hold a password)."""
    if locate.is_postgres_url(target):
        return f"schema {locate.split_schema(target)[1]!r}"
    if locate.is_redis_url(target):
        return f"Redis queue {locate.redis_prefix(target)!r}"
    return repr(target)
