"""The rows a PostgreSQL batch flushes: its working set's jobs as `flush`'s inserted
and updated rows (each update guarded by the version and dependents count it read),
built as columns (one list per column, as the statement takes them)."""

from __future__ import annotations

from typing import Any

from dogqueue.backend.kit.batchset import BatchWorkingSet
from dogqueue.backend.kit.rows import lease_micros, to_micros
from dogqueue.core.codec import encode_job
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
    """Append a new job's row: the columns of `kit.rows.job_row`, then its dependents."""
    # Appended field by field: faster than looping over job_row's tuple (the unit test
    # holds the two to the same columns).
    message = job.message
    seq, tenant, job_id, status, queue, priority, kind, run_at, lease, key, version, state, deps = (
        columns
    )
    seq.append(job.enqueue_seq)
    tenant.append(job.tenant_id)
    job_id.append(job.job_id)
    status.append(job.status.value)
    queue.append(message.queue)
    priority.append(int(message.priority))
    kind.append(message.job_type)
    run_at.append(to_micros(job.run_at))
    lease.append(lease_micros(job))
    key.append(message.idempotency_key)
    version.append(job.version)
    state.append(encode_job(job))
    deps.append(dependents)


def _add_update(columns: Columns, ws: BatchWorkingSet, key: JobKey, before_version: int) -> None:
    """Append a written job's update row (see UPDATE_COLUMNS; the middle five are
    `kit.rows.moved_row`)."""
    job = ws.jobs[key]
    stored = ws.stored_dependents.get(key, 0)
    seq, read_version, status, run_at, lease, version, state, deps_read, deps = columns
    seq.append(job.enqueue_seq)
    read_version.append(before_version)
    status.append(job.status.value)
    run_at.append(to_micros(job.run_at))
    lease.append(lease_micros(job))
    version.append(job.version)
    state.append(encode_job(job))
    deps_read.append(stored)
    deps.append(stored + ws.adopted.get(key, 0))
