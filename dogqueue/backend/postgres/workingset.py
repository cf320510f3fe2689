"""The rows a PostgreSQL batch flushes: its working set's jobs as `flush`'s inserted
and updated rows (each update guarded by the version and dependents count it read),
built as columns (one list per column, as the statement takes them)."""

from __future__ import annotations

from typing import Any

from dogqueue.backend.kit.batchset import BatchWorkingSet
from dogqueue.backend.kit.rows import job_row, moved_row
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey

#: The kinds (packing.py) of a journal's event columns: seq, tenant_id, job_id, version,
#: type, data.
JOURNAL_COLUMNS = "inninb"
#: The kinds of an inserted job row's columns (`kit.rows.job_row`, then its dependents).
INSERT_COLUMNS = "innnniniinibi"
#: The kinds of an updated job row's columns: enqueue_seq, version read, then
#: `kit.rows.moved_row`, then dependents read and dependents now.
UPDATE_COLUMNS = "iiniiibii"

#: Columns, one list per column.
Columns = list[list[Any]]


def job_rows(ws: BatchWorkingSet) -> tuple[Columns, Columns]:
    """(rows to insert, rows to update) for the jobs this batch wrote, as columns."""
    # Columns built in place: no row kept until the flush for the cycle collector to count.
    inserts: Columns = [[] for _ in INSERT_COLUMNS]
    updates: Columns = [[] for _ in UPDATE_COLUMNS]
    adopted = ws.adopted
    for key, before in ws.before.items():
        job = ws.jobs[key]
        if before is None:
            _add_insert(inserts, job, adopted.get(key, 0))
        else:
            _add_update(updates, ws, key, before.version)
    for key in adopted:  # parents that only gained dependents
        if key not in ws.before:
            _add_update(updates, ws, key, ws.jobs[key].version)
    return inserts, updates


def _add_insert(columns: Columns, job: JobInfo, dependents: int) -> None:
    """Append a new job's row: `kit.rows.job_row`, then its dependents."""
    for column, value in zip(columns, job_row(job), strict=False):
        column.append(value)
    columns[-1].append(dependents)


def _add_update(columns: Columns, ws: BatchWorkingSet, key: JobKey, before_version: int) -> None:
    """Append a written job's update row (see UPDATE_COLUMNS)."""
    job = ws.jobs[key]
    stored = ws.stored_dependents.get(key, 0)
    columns[0].append(job.enqueue_seq)
    columns[1].append(before_version)
    for column, value in zip(columns[2:7], moved_row(job), strict=True):
        column.append(value)
    columns[7].append(stored)
    columns[8].append(stored + ws.adopted.get(key, 0))
