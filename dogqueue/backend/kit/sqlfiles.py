"""Named SQL queries and numbered migrations, read from the .sql files of a backend's
package: the only SQL-file loader.

A query file is a run of blocks, each opened by `-- name: <name>` and, on the next line,
one `-- <description>` line saying what the query does (procrastinate's habit); the
block's SQL follows, up to the next name. Migrations are `sql/migrations/NNNN_what.sql`.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)[ \t]*$", re.MULTILINE)
_MIGRATION = re.compile(r"(\d{4})_\w+\.sql")
_DESCRIPTION = "-- "


class SqlFileError(ValueError):
    """A .sql file breaks the named-query format (a dogqueue packaging bug)."""


def parse_queries(text: str, source: str = "<sql>") -> dict[str, str]:
    """Every named block of `text`, by name, without its description line. Raises
    SqlFileError naming `source` for a block with no description, no SQL, or a name
    used twice."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, block in zip(parts[1::2], parts[2::2], strict=True):
        first, _, body = block.lstrip("\n").partition("\n")
        if not first.startswith(_DESCRIPTION):
            raise SqlFileError(f"{source}: query {name!r} has no '-- description' line")
        if not body.strip():
            raise SqlFileError(f"{source}: query {name!r} has no SQL")
        if name in queries:
            raise SqlFileError(f"{source}: query {name!r} is named twice")
        queries[name] = body.strip()
    return queries


def load_queries(package: str, file: str = "sql/queries.sql") -> dict[str, str]:
    """Every named query of `file` in `package` (by default sql/queries.sql)."""
    text = resources.files(package).joinpath(file).read_text("utf-8")
    return parse_queries(text, f"{package}/{file}")


def load_migrations(package: str) -> list[tuple[int, str]]:
    """(version, script) of every migration in `package`'s sql/migrations, in order."""
    folder = resources.files(package).joinpath("sql/migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text("utf-8")))
    return sorted(found)
