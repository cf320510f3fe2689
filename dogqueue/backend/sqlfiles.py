"""The loader the web browsers use until their SQL moves into the backends (the browser
move deletes this module); everything else loads through `dogqueue.backend.kit.sqlfiles`."""

from __future__ import annotations

from dogqueue.backend.kit.sqlfiles import load_migrations
from dogqueue.backend.kit.sqlfiles import load_queries as _load_queries

__all__ = ["load_migrations", "load_queries"]


def load_queries(package: str, file: str = "sql/queries.sql") -> dict[str, str]:
    """Every `-- name:` block of `file` in `package`; the browsers' files have no
    description lines yet."""
    return _load_queries(package, file, described=False)
