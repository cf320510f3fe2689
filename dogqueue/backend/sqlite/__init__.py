"""The SQLite backend."""

from dogqueue.backend.sqlite.backend import SqliteBackend

__all__ = ["SqliteBackend"]
