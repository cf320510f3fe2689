"""The coverage table (python -m properties.coverage) has no hole: every method,
parameter and returned field of the contract is drawn/compared by the state machine, or
has a reason naming the example test that covers it instead."""

from __future__ import annotations

import re
from pathlib import Path

from properties.coverage import contract_items, declared_but_unknown, join

ROOT = Path(__file__).resolve().parent.parent


def test_every_row_is_covered_or_has_a_reason() -> None:
    holes = [
        f"{item.method} {item.kind} {item.name}"
        for item, row in join(list(contract_items()))
        if row is None
    ]
    assert holes == [], f"rows neither drawn/compared nor reasoned: {holes}"


def test_every_declared_row_names_a_contract_item() -> None:
    unknown = declared_but_unknown(list(contract_items()))
    assert unknown == [], f"declared rows that name nothing in the contract: {unknown}"


def test_every_reason_names_an_existing_test() -> None:
    for item, row in join(list(contract_items())):
        if row is None or row.covered:
            continue
        paths = re.findall(r"tests/[\w/]+\.py", row.how)
        assert paths, f"the reason of {item} names no test file: {row.how}"
        for path in paths:
            assert (ROOT / path).is_file(), f"{item}: {path} does not exist"


def test_a_new_contract_method_shows_up_uncovered() -> None:
    from dogqueue.backend.contract import Backend
    from properties import coverage

    class Wider(Backend):
        async def purge(self, queue: str) -> int:
            return 0

    coverage.CONTRACT["Backend"] = Wider
    try:
        items = list(contract_items())
    finally:
        coverage.CONTRACT["Backend"] = Backend
    missing = {(i.method, i.kind, i.name) for i, row in join(items) if row is None}
    assert missing == {
        ("Backend.purge", "call", "()"),
        ("Backend.purge", "param", "queue"),
        ("Backend.purge", "field", "return"),
    }
