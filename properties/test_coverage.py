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


#: Where a reason may point: the shipped conformance suite (a third-party backend run the
#: documented way gets it), or a backend-only test (one backend's own behaviour).
SHIPPED = "dogqueue/testing/conformance/"
BACKEND_ONLY = re.compile(r"tests/integration/test_(memory|sqlite|postgres|redis)_\w+\.py")


def reason_problems(how: str) -> list[str]:
    """What is wrong with the test files a reason names (nothing if it names one, and
    each exists and is shipped or backend-only)."""
    paths = re.findall(r"(?:dogqueue/testing/conformance|tests)/[\w/]+\.py", how)
    if not paths:
        return ["names no test file"]
    problems = []
    for path in paths:
        if not (ROOT / path).is_file():
            problems.append(f"{path} does not exist")
        elif not (path.startswith(SHIPPED) or BACKEND_ONLY.fullmatch(path)):
            problems.append(f"{path} is neither in the shipped conformance suite nor backend-only")
    return problems


def test_every_reason_names_a_shipped_or_backend_only_test() -> None:
    problems = {
        f"{item.method} {item.name}": found
        for item, row in join(list(contract_items()))
        if row is not None and not row.covered and (found := reason_problems(row.how))
    }
    assert problems == {}


def test_a_reason_naming_a_project_only_test_is_refused() -> None:
    assert reason_problems("tests/observability/test_obs_prometheus.py reads a tail") == [
        "tests/observability/test_obs_prometheus.py is neither in the shipped conformance"
        " suite nor backend-only"
    ]
    assert reason_problems("dogqueue/testing/conformance/test_gone.py") == [
        "dogqueue/testing/conformance/test_gone.py does not exist"
    ]
    assert reason_problems("an example test somewhere") == ["names no test file"]
    assert reason_problems("tests/integration/test_postgres_backend.py: a dropped link") == []


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
