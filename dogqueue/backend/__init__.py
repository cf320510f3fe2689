"""Storage backends: one contract (`Backend`), implemented in memory, on SQLite and on
PostgreSQL, each on the storage kit (`dogqueue.backend.kit`)."""

from dogqueue.backend.contract import Backend

__all__ = ["Backend"]
