"""The PostgreSQL backend (optional extra `dogqueue[postgres]`, on asyncpg)."""

from dogqueue.backend.postgres.backend import PostgresBackend
from dogqueue.backend.postgres.log import PostgresLog, open_log

__all__ = ["PostgresBackend", "PostgresLog", "open_log"]
