"""Print the property suite's coverage table: every method of the `Backend` contract and
of `LogReader` (found by introspection, so a new method shows up uncovered), every
parameter (struct parameters field by field) and every field of every returned value,
each joined with the row the state machine declares for it
(`dogqueue.testing.stateful.coverage`): drawn/compared, or a reason.

    python -m properties.coverage [--missing]
"""

from __future__ import annotations

import argparse
import inspect
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec

import dogqueue.testing.stateful  # noqa: F401  (declares the rows)
from dogqueue.backend.contract import Backend
from dogqueue.log.reader import LogReader
from dogqueue.testing.stateful.coverage import ROWS, Row

#: Protocols whose methods make the contract, by the prefix rows use.
CONTRACT: dict[str, type] = {"Backend": Backend, "LogReader": LogReader}


@dataclass(frozen=True)
class Item:
    """One row of the contract: a method's parameter or returned field."""

    method: str
    kind: str
    name: str


def _args(annotation: object) -> tuple[object, ...]:
    return typing.get_args(annotation)


def _is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _unwrap(annotation: object) -> list[object]:
    """The element types a value of `annotation` is made of: Optional, lists,
    sequences and dict values taken apart; unions listed member by member."""
    if _is_union(annotation):
        return [t for arg in _args(annotation) if arg is not type(None) for t in _unwrap(arg)]
    origin = typing.get_origin(annotation)
    if origin in (list, Sequence, set, frozenset):
        return _unwrap(_args(annotation)[0])
    if origin is dict:
        return _unwrap(_args(annotation)[1])
    return [annotation]


def _struct_fields(cls: object) -> list[str] | None:
    """The fields of a msgspec Struct or NamedTuple class, the tag first; None if `cls`
    is neither."""
    if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
        info = msgspec.structs.fields(cls)
        tag = ["type"] if cls.__struct_config__.tag_field else []
        return tag + [f.name for f in info]
    if isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return list(cls._fields)
    return None


def _fields_of(annotation: object) -> list[str]:
    """The rows of a returned value: its (union of) struct fields, else "return"."""
    if annotation is None or annotation is type(None):
        return []
    names: list[str] = []
    scalar = False
    for part in _unwrap(annotation):
        fields = _struct_fields(part)
        if fields is None:
            scalar = True
        else:
            names += [name for name in fields if name not in names]
    if typing.get_origin(annotation) is dict and "key" not in names:
        names.insert(0, "key")
    return (["return"] if scalar else []) + names


def _params_of(name: str, annotation: object) -> list[str]:
    """The rows of a parameter: each field of a struct parameter, else its name."""
    names: list[str] = []
    for part in _unwrap(annotation):
        fields = _struct_fields(part)
        if fields is None:
            return [name]
        names += [f"{name}.{field}" for field in fields if f"{name}.{field}" not in names]
    return names


def contract_items() -> Iterator[Item]:
    """Every parameter and returned field of every contract method."""
    for prefix, protocol in CONTRACT.items():
        for name, function in inspect.getmembers(protocol, inspect.isfunction):
            if name.startswith("_"):  # `async with backend` is open and close
                continue
            hints = typing.get_type_hints(function)
            method = f"{prefix}.{name}"
            yield Item(method, "call", "()")
            for parameter in list(inspect.signature(function).parameters)[1:]:
                for row in _params_of(parameter, hints[parameter]):
                    yield Item(method, "param", row)
            returned = hints.get("return")
            if typing.get_origin(returned) is not None and "ContextManager" in str(returned):
                yield Item(method, "field", "return")
                continue
            for row in _fields_of(returned):
                yield Item(method, "field", row)


def join(items: list[Item]) -> list[tuple[Item, Row | None]]:
    """Each contract item with its declared row (a "*" row covers every field of its
    method by whole-value equality); covered rows win over reasons."""
    declared: dict[tuple[str, str, str], Row] = {}
    for row in ROWS:
        key = (row.method, row.kind, row.name)
        if key not in declared or row.covered:
            declared[key] = row
    for method in {row.method for row in ROWS if row.covered and row.kind != "call"}:
        declared.setdefault(
            (method, "call", "()"), Row(method, "call", "()", "called: see its rows", True)
        )
    joined: list[tuple[Item, Row | None]] = []
    for item in items:
        found = declared.get((item.method, item.kind, item.name))
        if found is None and item.kind == "field":
            found = declared.get((item.method, "field", "*"))
        joined.append((item, found))
    return joined


def declared_but_unknown(items: list[Item]) -> list[Row]:
    """Declared rows that name no contract item (a typo, or a renamed parameter)."""
    known = {(i.method, i.kind, i.name) for i in items}
    methods = {i.method for i in items}
    return [
        row
        for row in ROWS
        if (row.method, row.kind, row.name) not in known
        and not (row.name == "*" and row.method in methods)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--missing", action="store_true", help="print only uncovered rows")
    args = parser.parse_args()
    items = list(contract_items())
    joined = join(items)
    covered = sum(1 for _, row in joined if row is not None and row.covered)
    reasoned = sum(1 for _, row in joined if row is not None and not row.covered)
    print(
        f"{len(joined)} rows: {covered} drawn or compared ({100 * covered / len(joined):.0f}%),"
        f" {reasoned} with a reason, {len(joined) - covered - reasoned} neither\n"
    )
    print("| method | row | how |")
    print("| --- | --- | --- |")
    for item, row in joined:
        if args.missing and row is not None:
            continue
        how = "**NOT COVERED**" if row is None else row.how
        mark = "" if row is None or row.covered else "reason: "
        label = {"field": item.name, "param": f"({item.name})", "call": "()"}[item.kind]
        print(f"| `{item.method}` | `{label}` | {mark}{how.replace('|', '/')} |")


if __name__ == "__main__":
    main()
