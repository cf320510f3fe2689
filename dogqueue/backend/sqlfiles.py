"""Named SQL blocks and numbered migrations, read from the .sql files of a backend's
package (procrastinate-style `-- name:` blocks)."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"(\d{4})_\w+\.sql")


def load_queries(package: str, file: str = "sql/queries.sql") -> dict[str, str]:
    """Every `-- name:` block of `file` in `package` (by default sql/queries.sql)."""
    text = resources.files(package).joinpath(file).read_text("utf-8")
    parts = _NAME.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def load_migrations(package: str) -> list[tuple[int, str]]:
    """(version, script) of every migration in `package`'s sql/migrations, in order."""
    folder = resources.files(package).joinpath("sql/migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text("utf-8")))
    return sorted(found)
