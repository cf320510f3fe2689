"""The application's own connection, whatever its driver, as one SQL session.

Transactional enqueue runs the backend's own statements (asyncpg's `$n` placeholders)
on a connection the application opened: an asyncpg Connection, a psycopg 3
AsyncConnection, or a SQLAlchemy AsyncConnection on either driver (unwrapped to the
driver's connection). Optional drivers are recognised through `sys.modules`: a
connection of a driver nobody imported cannot exist, so none is imported here.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Protocol

import asyncpg

from dogqueue.core.errors import InvalidInput, StorageError

#: What the application may pass, for error messages.
ACCEPTED = (
    "an asyncpg Connection, a psycopg AsyncConnection or a SQLAlchemy AsyncConnection "
    "(asyncpg or psycopg driver)"
)

_PLACEHOLDER = re.compile(r"\$(\d+)")
#: SQLSTATEs of a lost race (asyncpg's classes in errors._RACES): unique violation,
#: division by zero (the flush's version guard), serialization failure, deadlock.
_RACE_STATES = frozenset({"23505", "22012", "40001", "40P01"})


class Session(Protocol):
    """The statements a batch of units runs, in asyncpg's shape."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...

    async def execute(self, query: str, *args: Any) -> Any: ...


class PsycopgSession:
    """A psycopg 3 AsyncConnection running asyncpg-style statements: `$n` becomes a
    named placeholder (one value may appear twice), a literal `%` is escaped."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @staticmethod
    def _translate(query: str, args: tuple[Any, ...]) -> tuple[str, dict[str, Any] | None]:
        if not args:
            return query, None
        query = _PLACEHOLDER.sub(r"%(p\1)s", query.replace("%", "%%"))
        return query, {f"p{n}": value for n, value in enumerate(args, start=1)}

    async def _cursor(self, query: str, args: tuple[Any, ...]) -> Any:
        error_class = sys.modules["psycopg"].Error
        try:
            return await self._conn.execute(*self._translate(query, args))
        except error_class as error:
            state = getattr(error, "sqlstate", None)
            if state in _RACE_STATES:
                raise StorageError(f"a unit of work lost a race: {error}") from error
            raise StorageError(f"PostgreSQL: {error}") from error

    async def fetch(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = await (await self._cursor(query, args)).fetchall()
        return rows

    async def fetchrow(self, query: str, *args: Any) -> Any:
        row: tuple[Any, ...] | None = await (await self._cursor(query, args)).fetchone()
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[0]

    async def execute(self, query: str, *args: Any) -> None:
        await self._cursor(query, args)


async def session_of(connection: object) -> Session:
    """The driver session under `connection`, inside the transaction the application
    commits; InvalidInput("connection") for any other object, or for a connection with
    no transaction open that would commit each statement on its own."""
    sqlalchemy = sys.modules.get("sqlalchemy.ext.asyncio")
    if sqlalchemy is not None and isinstance(connection, sqlalchemy.AsyncConnection):
        return await _sqlalchemy_session(connection)
    if isinstance(connection, (asyncpg.Connection, asyncpg.pool.PoolConnectionProxy)):
        if not connection.is_in_transaction():
            raise InvalidInput("connection", "must be inside a transaction (conn.transaction())")
        return connection  # type: ignore[no-any-return]  # asyncpg is untyped
    session = _psycopg_session(connection)
    if session is None:
        raise InvalidInput("connection", f"must be {ACCEPTED}, not {type(connection).__name__}")
    return session


def _psycopg_session(connection: object) -> PsycopgSession | None:
    """The session of a psycopg AsyncConnection in a transaction the application commits
    (None for an object of another kind)."""
    psycopg: Any = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(connection, psycopg.AsyncConnection):
        return None
    status = connection.info.transaction_status
    idle = psycopg.pq.TransactionStatus.IDLE
    if status == psycopg.pq.TransactionStatus.INERROR:
        raise InvalidInput("connection", "its transaction is aborted: roll it back")
    if status == idle and connection.autocommit:
        raise InvalidInput(
            "connection", "must be inside a transaction (autocommit: conn.transaction())"
        )
    # Without autocommit an idle connection's next statement begins the transaction
    # that the application commits, as its own statements would.
    return PsycopgSession(connection)


async def _sqlalchemy_session(connection: Any) -> Session:
    if not connection.in_transaction():
        raise InvalidInput("connection", "must be inside a transaction (engine.begin())")
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if isinstance(driver, asyncpg.Connection):
        if not driver.is_in_transaction():
            # SQLAlchemy begins the driver's transaction at its first statement.
            await connection.exec_driver_sql("SELECT 1")
        return driver  # type: ignore[no-any-return]  # asyncpg is untyped
    session = _psycopg_session(driver)
    if session is None:
        raise InvalidInput("connection", f"must be {ACCEPTED}, not SQLAlchemy on {type(driver)}")
    return session
