"""The rows a PostgreSQL batch flushes: its working set's jobs as `flush`'s inserted
and updated rows (each update guarded by the version and dependents count it read)."""

from __future__ import annotations

from typing import Any

from dogqueue.backend.kit.batchset import BatchWorkingSet
from dogqueue.backend.kit.rows import job_row, moved_row
from dogqueue.core.projection import JobKey

#: The kinds (packing.py) of a journal's event columns: seq, tenant_id, job_id, version,
#: type, data.
JOURNAL_COLUMNS = "inninb"
#: The kinds of an inserted job row's columns (`job_row`, then its dependents).
INSERT_COLUMNS = "innnniniinibi"
#: The kinds of an updated job row's columns (`_update_row`).
UPDATE_COLUMNS = "iiniiibii"


def job_rows(ws: BatchWorkingSet) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(rows to insert, rows to update) for the jobs this batch wrote."""
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    for key, before in ws.before.items():
        job = ws.jobs[key]
        if before is None:
            inserts.append((*job_row(job), ws.adopted.get(key, 0)))
        else:
            updates.append(_update_row(ws, key, before.version))
    for key in ws.adopted:  # parents that only gained dependents
        if key not in ws.before:
            updates.append(_update_row(ws, key, ws.jobs[key].version))
    return inserts, updates


def _update_row(ws: BatchWorkingSet, key: JobKey, before_version: int) -> tuple[Any, ...]:
    job = ws.jobs[key]
    stored = ws.stored_dependents.get(key, 0)
    return (
        job.enqueue_seq,
        before_version,
        *moved_row(job),
        stored,
        stored + ws.adopted.get(key, 0),
    )
