"""The SQLite backend's SQL, loaded once from the .sql files beside this module."""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _load_queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("sql/queries.sql").read_text("utf-8")
    parts = _NAME.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (executescript would commit)."""
    result, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            result.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        not ln.strip() or ln.strip().startswith("--") for ln in pending.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement: {pending!r}")
    return result


def migrations() -> list[tuple[int, str]]:
    """(version, script) of every schema migration, in order."""
    folder = resources.files(__package__).joinpath("sql/migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text("utf-8")))
    return sorted(found)


Q = _load_queries()
#: The schema version this code writes.
SCHEMA_VERSION = migrations()[-1][0]
