"""A PostgreSQL flush's job rows come out as columns (one list per column, as the
statement takes them), with no object per row for the cycle collector; the leases a
process remembers for their settle are untracked too."""

from __future__ import annotations

import gc

from dogqueue.backend.kit.batchset import BatchWorkingSet
from dogqueue.backend.kit.rows import job_row, moved_row
from dogqueue.backend.postgres.reads import Known
from dogqueue.backend.postgres.workingset import INSERT_COLUMNS, UPDATE_COLUMNS, job_rows
from tests.unit.test_working_set import _created, _leased


def test_job_rows_are_columns_of_the_inserted_and_updated_rows() -> None:
    ws = BatchWorkingSet([])
    new = _created("a", 1)
    ws.save(None, new)
    stored = _created("b", 2)
    ws.seed(stored, 3)
    leased = _leased(stored)
    ws.save(stored, leased)

    inserts, updates = job_rows(ws)

    assert inserts == [[value] for value in (*job_row(new), 0)]
    assert len(inserts) == len(INSERT_COLUMNS)
    expected = (stored.enqueue_seq, stored.version, *moved_row(leased), 3, 3)
    assert updates == [[value] for value in expected]
    assert len(updates) == len(UPDATE_COLUMNS)
    values = [value for column in (*inserts, *updates) for value in column]
    assert not any(gc.is_tracked(value) for value in values)


def test_a_remembered_lease_is_not_tracked_by_the_cycle_collector() -> None:
    assert not gc.is_tracked(Known(_leased(_created("a", 1)), 2))
