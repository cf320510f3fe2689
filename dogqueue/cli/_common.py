"""What the inspection commands share: the --db option (a SQLite path or a PostgreSQL
URL, DOGQUEUE_DB by default), reading the log, time parsing and turning dogqueue errors
into a message and exit code 2."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TextIO, TypeVar

from dogqueue.audit.timetravel import AsOf
from dogqueue.backend import locate
from dogqueue.core.errors import CorruptLog, InvalidInput, QueueError
from dogqueue.core.validation import check_name
from dogqueue.display import one_line, visible
from dogqueue.log.reader import LogReader

T = TypeVar("T")

#: Exit codes: 0 all good, 1 the log or projection is wrong, 2 the command could not run.
EXIT_OK, EXIT_BAD_LOG, EXIT_ERROR = 0, 1, 2

Command = Callable[[argparse.Namespace], int]


def add_db(parser: argparse.ArgumentParser, *, writes: bool = False) -> None:
    """The --db option every command takes."""
    how = (
        "opened read-only: never migrated or written" if not writes else "this command writes to it"
    )
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        help=f"the queue: a SQLite database file, a postgresql:// URL (schema=NAME picks"
        f" the schema) or a redis:// URL (prefix=NAME picks the queue); default:"
        f" ${locate.DB_ENV}; {how}",
    )


def db_of(args: argparse.Namespace) -> str:
    """The --db value, else $DOGQUEUE_DB; InvalidInput("db") if neither is set."""
    db: str | None = args.db or os.environ.get(locate.DB_ENV)
    if not db:
        raise InvalidInput("db", f"give --db PATH|URL or set {locate.DB_ENV}")
    return db


def read_log(db: str, read: Callable[[LogReader], Awaitable[T]]) -> T:
    """Run `read` on the log of `db`, opened read-only and closed afterwards."""

    async def run() -> T:
        log = locate.open_log(db)
        try:
            return await read(log)
        finally:
            await log.close()

    return asyncio.run(run())


def add_as_of(parser: argparse.ArgumentParser) -> None:
    """The --as-of option of the commands that can look into the past."""
    parser.add_argument(
        "--as-of",
        metavar="WHEN",
        type=_as_of,
        default=AsOf(),
        help="show the state as it was at a log position (e.g. 1500) or a time"
        " (ISO 8601, e.g. 2030-01-01T12:00:00Z; UTC if no zone); folded from the log",
    )


def _as_of(text: str) -> AsOf:
    try:
        return AsOf.parse(text)
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.reason) from error


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time from the command line (UTC if no zone is given)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from error
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def guarded(command: Callable[[argparse.Namespace], int]) -> Command:
    """Run `command` (after checking its --tenant, if any), reporting a dogqueue error as
    one line on stderr and exit code 2; a stored row that does not decode is a bad log:
    the line names the row, and the exit code is 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            if hasattr(args, "db"):
                args.db = db_of(args)
            if getattr(args, "tenant", None) is not None:
                check_name("tenant", args.tenant)
            return command(args)
        except CorruptLog as error:
            print(f"dogqueue {args.command}: {error}", file=sys.stderr)
            return EXIT_BAD_LOG
        except QueueError as error:
            print(f"dogqueue {args.command}: {error}", file=sys.stderr)
            return EXIT_ERROR

    return run


def when(moment: datetime | None) -> str:
    """A time for tables: ISO 8601 to the second, or '-'."""
    return "-" if moment is None else moment.isoformat(sep=" ", timespec="seconds")


def say(
    text: str = "", *, end: str = "\n", file: TextIO | None = None, flush: bool = False
) -> None:
    """Print `text` as every command prints what it read: control characters and
    terminal escape sequences (which stored text may hold) shown as `\\x1b`-style text,
    never obeyed; newlines and tabs kept."""
    print(visible(text, keep_newlines=True), end=end, file=file, flush=flush)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Rows under a header: drawn by rich on a terminal when it is installed (the [cli]
    extra), else aligned, space-separated columns that scripts can cut. Stored text is
    shown on one line with control characters and terminal escapes made visible, never
    obeyed (nor read as rich markup)."""
    rows = [[one_line(cell) for cell in row] for row in rows]
    if sys.stdout.isatty():
        drawn = _rich_table(rows, header)
        if drawn is not None:
            return drawn
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _rich_table(rows: list[list[str]], header: list[str]) -> str | None:
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        return None
    drawn = Table(*header, header_style="bold")
    for row in rows:
        drawn.add_row(*(Text(cell, no_wrap=True, overflow="ellipsis") for cell in row))
    console = Console()
    with console.capture() as captured:
        console.print(drawn)
    return captured.get().rstrip("\n")
