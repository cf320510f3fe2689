"""The SQLite backend's SQL, loaded once from the .sql files beside this module."""

from __future__ import annotations

import sqlite3

from dogqueue.backend.kit.sqlfiles import load_migrations, load_queries


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
    return load_migrations(__package__)


Q = load_queries(__package__)
#: The schema version this code writes.
SCHEMA_VERSION = migrations()[-1][0]
