"""What the state machine exercises of the contract, declared next to the rules and
checks that do it: which values each parameter of a `Backend` or `LogReader` method is
drawn from, and how each field of each returned value is compared with the model.

`python -m properties.coverage` lists every method, parameter and returned field of the
contract by introspection and joins them with these rows; a row neither covered nor
given a reason (naming the example test that covers it instead) fails
properties/test_coverage.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["call", "param", "field"]


@dataclass(frozen=True)
class Row:
    """One declared row: `method` ("Backend.enqueue"), a parameter or returned field
    `name` ("message.payload_bytes", "lease_token", "return"), and how the suite covers
    it, or (covered False) why it does not and what covers it instead."""

    method: str
    kind: Kind
    name: str
    how: str
    covered: bool


ROWS: list[Row] = []


def _names(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _declare(
    methods: str | Iterable[str], kind: Kind, names: str | Iterable[str], how: str, covered: bool
) -> None:
    for method in _names(methods):
        for name in _names(names):
            ROWS.append(Row(method, kind, name, how, covered))


def drawn(methods: str | Iterable[str], params: str | Iterable[str], values: str) -> None:
    """The rules call `methods` with `params` drawn from `values` (said in words)."""
    _declare(methods, "param", params, values, True)


def compared(methods: str | Iterable[str], fields: str | Iterable[str], check: str) -> None:
    """An invariant or rule compares `fields` of what `methods` return, as `check` says."""
    _declare(methods, "field", fields, check, True)


def called(methods: str | Iterable[str], where: str) -> None:
    """The rules call `methods` (which take and return nothing to draw or compare) as
    `where` says."""
    _declare(methods, "call", "()", where, True)


def reasoned(
    methods: str | Iterable[str], kind: Kind, names: str | Iterable[str], reason: str
) -> None:
    """The suite does not draw or compare these rows: `reason` says why, and which
    example test covers them."""
    _declare(methods, kind, names, reason, False)
