"""How the PostgreSQL backend tells a lost race from a driver failure, and turns the
driver's errors into dogqueue's `StorageError`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg

from dogqueue.core.errors import StorageError

P = ParamSpec("P")
R = TypeVar("R")

#: What the flush statement raises when a row it guards moved under it (a job's version
#: or dependents count): SQL has no raise, so `flush` divides by zero on purpose.
VersionGuardTripped = asyncpg.DivisionByZeroError
#: Errors that mean "another transaction got there first": re-run on fresh state.
_RACES = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    VersionGuardTripped,
)


#: What the driver raises for a failed statement or a lost connection.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


def _storage_errors(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`method`, raising StorageError for a driver error (a lost connection, a
    terminated session, a failed statement)."""

    @functools.wraps(method)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except _DRIVER_ERRORS as error:
            raise StorageError(f"PostgreSQL: {error}") from error

    return translated
