"""Print the catch table of properties/README.md: every generated broken backend
(broken.py and the contract-boundary ones of boundary.py), run with the loaded
profile's budget (no shrinking), the seconds to its first failure, and the check that
caught it.

    python -m properties.catch_table [--backend package.module:factory] [--only FAMILY]
"""

from __future__ import annotations

import argparse
import re
import time

from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from dogqueue.testing import (
    BackendFactory,
    MemoryFactory,
    SqliteFactory,
    backend_state_machine,
    load_factory,
    load_profile,
)
from properties.boundary import EQUIVALENT, SQLITE_BASED, boundary_family, boundary_mutants
from properties.broken import WrappingFactory, family, mutant_classes

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LIST = re.compile(r"\[[^\]]*\]")
_SUCCEEDED = re.compile(r"^call succeeded with .*; expected")


def budget() -> settings:
    """The loaded profile without shrinking: what the catch test runs."""
    return settings(settings(), phases=[Phase.explicit, Phase.generate])


def caught_by(base: BackendFactory, mutant: type) -> str | None:
    """The first line of the check that failed on `mutant`, ids elided; None if the
    suite passed. An error other than a check's AssertionError is named by its type."""
    machine = backend_state_machine(WrappingFactory(base, mutant), mutant.__name__)
    try:
        run_state_machine_as_test(machine, settings=budget())
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else "(no message)"
        first = _SUCCEEDED.sub("the call succeeded; expected", first)
        if not isinstance(error, AssertionError):
            first = f"{type(error).__name__}: {first}"
        return _LIST.sub("[...]", _ID.sub("ID", first))[:140].replace("|", "\\|")
    return None


def mutants() -> dict[str, tuple[str, type]]:
    """Every generated mutant (broken.py, then boundary.py), with its family."""
    found = {name: (family(name), cls) for name, cls in mutant_classes().items()}
    for name, cls in boundary_mutants().items():
        if name not in EQUIVALENT:
            found[name] = (boundary_family(name), cls)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", metavar="MODULE:FACTORY", default=None)
    parser.add_argument("--only", metavar="FAMILY", default=None, help="one family's rows")
    args = parser.parse_args()
    profile = load_profile()
    base = load_factory(args.backend) if args.backend else MemoryFactory()
    started = time.monotonic()
    rows = []
    for name, (kind, mutant) in mutants().items():
        if args.only and args.only not in kind:
            continue
        start = time.monotonic()
        sqlite = name in SQLITE_BASED and isinstance(base, MemoryFactory)
        check = caught_by(SqliteFactory() if sqlite else base, mutant)
        seconds = time.monotonic() - start
        verdict = check or "**NOT CAUGHT**"
        rows.append(f"| {kind} | `{name}` | {seconds:.2f} | {verdict} |")
    caught = sum("NOT CAUGHT" not in row for row in rows)
    print(f"profile {profile}, base {base!r}: {caught}/{len(rows)} caught")
    print(f"in {time.monotonic() - started:.0f} s; equivalent, not run: {len(EQUIVALENT)}\n")
    print("| family | broken backend | s to first failure | caught by the check that failed |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))
    for name, reason in EQUIVALENT.items():
        print(f"| equivalent | `{name}` | - | not run: {reason} |")


if __name__ == "__main__":
    main()
