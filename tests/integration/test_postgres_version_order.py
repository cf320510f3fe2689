"""A sequencer step numbers events in (xid, seq) order, except that an event follows its
job's previous version: one whose transaction had an older xid pulls that version
forward, and one whose previous version is neither numbered nor in the step waits, with
every later version of its job."""

from __future__ import annotations

import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dogqueue.backend.postgres.sequencer import _in_version_order

Row = dict[str, Any]


def row(job: str, version: int, *, ready: bool = False) -> Row:
    """A `sealable` row as far as ordering reads it (`ready`: the previous version is
    numbered, or there is none)."""
    return {"tenant_id": "t", "job_id": job, "version": version, "ready": ready or version == 1}


def rule(rows: list[Row]) -> list[Row]:
    """The rule, stated recursively: place a row after placing its previous version if
    that version is here; leave it out if that version is neither here nor numbered."""
    here = {(r["tenant_id"], r["job_id"], r["version"]): r for r in rows}
    placed: list[Row] = []

    def place(r: Row) -> bool:
        if any(p is r for p in placed):
            return True
        previous = here.get((r["tenant_id"], r["job_id"], r["version"] - 1))
        if not r["ready"] and (previous is None or not place(previous)):
            return False
        placed.append(r)
        return True

    for r in rows:
        place(r)
    return placed


def test_a_version_that_comes_first_follows_its_previous_one() -> None:
    v1, v2, other = row("a", 1), row("a", 2), row("b", 1)
    assert _in_version_order([v2, other, v1]) == [v1, v2, other]


def test_a_version_whose_previous_is_missing_waits_with_the_later_ones() -> None:
    v3, v4, numbered = row("a", 3), row("a", 4), row("b", 2, ready=True)
    assert _in_version_order([v3, numbered, v4]) == [numbered]


def test_a_long_history_in_reverse_order_is_placed_oldest_first() -> None:
    history = [row("a", v) for v in range(1, sys.getrecursionlimit() * 2)]
    assert _in_version_order(history[::-1]) == history


@st.composite
def steps(draw: st.DrawFn) -> list[Row]:
    """Rows of one step in any order: per job, versions up to some N numbered (so N + 1
    is ready), any of those above N here (a gap: not committed yet, or past the cut)."""
    rows = []
    for job in "abcd":
        numbered = draw(st.integers(0, 3))
        here = draw(st.sets(st.integers(numbered + 1, numbered + 6)))
        rows += [row(job, v, ready=v == numbered + 1) for v in sorted(here)]
    return draw(st.permutations(rows))


@given(steps())
def test_any_step_is_ordered_by_the_rule(rows: list[Row]) -> None:
    assert [id(r) for r in _in_version_order(rows)] == [id(r) for r in rule(rows)]
