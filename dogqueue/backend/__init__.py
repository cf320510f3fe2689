"""Storage backends: one contract (`Backend`), implemented in memory and on SQLite."""

from dogqueue.backend.contract import Backend

__all__ = ["Backend"]
