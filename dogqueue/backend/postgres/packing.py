"""Rows passed to a statement as one parameter per column, integer and name columns
packed into one string each: asyncpg checks and encodes an array parameter element by
element (about 0.4 µs each, a fifth of a bulk batch's client time), while joining a
column into one string costs a tenth of that. The SQL unpacks them with
`string_to_array` (see queries.sql: `flush`, `insert_log`).

A column is packed by its kind: `i` integers (or None), `n` names (or None: dogqueue's
names hold no control character, so one separates them); `b` bytes stay an array (split
on the server, they cost it more than they save here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dogqueue.core.errors import StorageError

#: Separates packed names (a control character: never inside a name).
NAME_SEPARATOR = "\x1f"
#: A None among packed names (another control character).
NULL_NAME = "\x1e"
#: A None among packed integers.
NULL_INT = "n"


def pack_ints(values: Sequence[int | None]) -> str:
    """Integers joined by commas, None as NULL_INT."""
    if None in values:
        return ",".join(NULL_INT if value is None else str(value) for value in values)
    return ",".join(map(str, values))


def pack_names(values: Sequence[str | None]) -> str:
    """Names joined by NAME_SEPARATOR, None as NULL_NAME; a value holding either control
    character is refused (it would split into other rows)."""
    if None in values:
        joined = NAME_SEPARATOR.join(NULL_NAME if value is None else value for value in values)
        nulls = values.count(None)
    else:
        joined = NAME_SEPARATOR.join(values)  # type: ignore[arg-type]
        nulls = 0
    if values and (
        joined.count(NAME_SEPARATOR) != len(values) - 1
        or joined.count(NULL_NAME) != nulls
        or "" in values
    ):
        raise StorageError("a name to store is empty or holds a control character")
    return joined


def packed(columns: list[list[Any]], kinds: str) -> list[Any]:
    """The parameters of rows given as `columns` (one list per column), each packed by
    its kind in `kinds` (one letter per column: `i`, `n` or `b`)."""
    if len(columns) != len(kinds):
        raise ValueError(f"{len(columns)} columns for {len(kinds)} kinds")
    parameters: list[Any] = []
    for kind, values in zip(kinds, columns, strict=True):
        if kind == "i":
            parameters.append(pack_ints(values))
        elif kind == "n":
            parameters.append(pack_names(values))
        elif kind == "b":
            parameters.append(values)
        else:
            raise ValueError(f"unknown column kind {kind!r}")
    return parameters
