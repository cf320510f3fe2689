"""`dogqueue migrate`: bring a queue's storage to this dogqueue's schema version, as its
owner, so that roles allowed only to read and write rows can open it."""

from __future__ import annotations

import argparse
import asyncio

from dogqueue.backend import locate
from dogqueue.cli._common import EXIT_OK, add_db, guarded, say
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
