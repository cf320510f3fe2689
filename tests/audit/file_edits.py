"""Reading and changing a SQLite log file behind dogqueue's back, as an attacker with
write access to the file would."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def rows(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """The rows `sql` selects from the file."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def edit(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Run `statements` on the file in one transaction."""
    conn = sqlite3.connect(path)
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()
