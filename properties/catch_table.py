"""Print the catch table of properties/README.md: every generated broken backend, run
with the loaded profile's budget (no shrinking), and the check that caught it.

    python -m properties.catch_table [--backend package.module:factory]
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
    backend_state_machine,
    load_factory,
    load_profile,
)
from properties.broken import WrappingFactory, family, mutant_classes

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LIST = re.compile(r"\[[^\]]*\]")
_SUCCEEDED = re.compile(r"^call succeeded with .*; expected")


def budget() -> settings:
    """The loaded profile without shrinking: what the catch test runs."""
    return settings(settings(), phases=[Phase.explicit, Phase.generate])


def caught_by(base: BackendFactory, mutant: type) -> str | None:
    """The first line of the check that failed on `mutant`, ids elided; None if the
    suite passed."""
    machine = backend_state_machine(WrappingFactory(base, mutant), mutant.__name__)
    try:
        run_state_machine_as_test(machine, settings=budget())
    except AssertionError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        first = _SUCCEEDED.sub("the call succeeded; expected", first)
        return _LIST.sub("[...]", _ID.sub("ID", first)).replace("|", "\\|")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", metavar="MODULE:FACTORY", default=None)
    args = parser.parse_args()
    profile = load_profile()
    base = load_factory(args.backend) if args.backend else MemoryFactory()
    started = time.monotonic()
    rows = []
    for name, mutant in mutant_classes().items():
        check = caught_by(base, mutant)
        rows.append(f"| {family(name)} | `{name}` | {check or '**NOT CAUGHT**'} |")
    caught = sum("NOT CAUGHT" not in row for row in rows)
    print(f"profile {profile}, base {base!r}: {caught}/{len(rows)} caught")
    print(f"in {time.monotonic() - started:.0f} s\n")
    print("| family | broken backend | caught by the check that failed |")
    print("| --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
