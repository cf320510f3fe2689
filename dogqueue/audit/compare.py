"""The stored read side compared with the fold of the log: projection rows, status
counts, the dependency index, chain heads, and the unsealed tail folded on top."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import msgspec

from dogqueue.audit.report import Report
from dogqueue.core.codec import decode_event
from dogqueue.core.errors import CorruptLog, InvalidTransition
from dogqueue.core.events import is_control
from dogqueue.core.evolve import evolve
from dogqueue.core.projection import JobKey
from dogqueue.log.reader import PROJECTED_COLUMNS, LogRecord, ProjectionRow, projected_columns
from dogqueue.log.stored import stored_job

#: How long a committed event may wait for its position before verify reports it.
UNSEALED_GRACE = timedelta(seconds=60)


def compare_projection(
    report: Report,
    rows: Iterable[ProjectionRow],
    *,
    label: str = "projection",
    keys_released: bool = False,
    seen: set[JobKey] | None = None,
) -> None:
    """Record every stored projection row that differs from the fold of the log: its
    state, and each column a read path searches on (dequeue, leases, keys, tenants). A
    row that does not decode is named. `keys_released`: an archive keeps no keys, and its
    jobs must have finished. Given `seen`, the rows' jobs are added to it and the jobs of
    the fold without a row are not reported (the caller compares more rows)."""
    complete = seen is None
    seen = set() if seen is None else seen
    for row in rows:
        try:
            job = stored_job(row.state, f"job {row.job_id!r} of {row.tenant_id!r}")
        except CorruptLog as error:
            report.add(None, f"{label}: {error}")
            seen.add((str(row.tenant_id), str(row.job_id)))
            continue
        # The state names the job; its columns are checked against the same fold.
        key = (job.tenant_id, job.job_id)
        name = f"job {key[1]!r} of {key[0]!r}"
        seen.add(key)
        folded = report.jobs.get(key)
        if folded is None:
            if key not in report.broken_jobs:  # else its bad event is reported already
                report.add(None, f"{label} holds {name}, absent from the log")
            continue
        if row.enqueue_seq != job.enqueue_seq:
            report.add(None, f"{label} of {name}: column enqueue_seq disagrees with its state")
        if msgspec.structs.replace(job, enqueue_seq=folded.enqueue_seq) != folded:
            report.add(None, f"{label} of {name} differs from its events")
        expected = projected_columns(folded)
        if keys_released:
            expected["idempotency_key"] = None
        for column in PROJECTED_COLUMNS:
            stored = getattr(row, column)
            if stored != expected[column] or type(stored) is not type(expected[column]):
                report.add(
                    None,
                    f"{label} of {name}: column {column} is {stored!r},"
                    f" the log says {expected[column]!r}",
                )
        if keys_released and not folded.status.is_terminal:
            report.add(None, f"{label} holds {name}, which had not finished")
    if complete:
        report_missing_rows(report, seen, label)


def report_missing_rows(report: Report, seen: set[JobKey], label: str = "projection") -> None:
    """Record every job of the fold that no compared row holds."""
    for key in report.jobs.keys() - seen:
        report.add(None, f"{label} lacks job {key[1]!r} of {key[0]!r}")


def compare_counts(
    report: Report,
    rows: Iterable[ProjectionRow],
    stored: Mapping[tuple[str, str], int] | None,
) -> None:
    """Record every (tenant, status) whose stored job count differs from the number of
    projection rows in that status (the rows themselves are compared with the fold)."""
    if stored is None:
        return
    counted = Counter((str(row.tenant_id), str(row.status)) for row in rows)
    for key in sorted(stored.keys() | counted.keys()):
        kept, actual = stored.get(key, 0), counted.get(key, 0)
        if kept != actual:
            tenant, status = key
            report.add(
                None,
                f"status counts say {kept} {status} jobs of {tenant!r};"
                f" the projection has {actual}",
            )


def compare_dependencies(
    report: Report,
    stored: Iterable[tuple[str, str, str]],
    live: Iterable[JobKey] | None = None,
) -> None:
    """Record every dependency the stored index holds that the folded jobs' `after`
    does not name, and every one it lacks. Given `live` (the jobs the log still holds
    rows of), the dependencies of archived jobs are not expected: archival removes them."""
    jobs = report.jobs
    keys = jobs.keys() if live is None else [key for key in live if key in jobs]
    folded = {
        (jobs[key].tenant_id, parent, jobs[key].job_id)
        for key in keys
        for parent in jobs[key].message.after
    }
    kept = set(stored)
    for tenant, parent, child in sorted(kept - folded):
        report.add(
            None,
            f"dependency index holds {parent!r} -> {child!r} of {tenant!r}, which no job names",
        )
    for tenant, parent, child in sorted(folded - kept):
        report.add(None, f"dependency index lacks {parent!r} -> {child!r} of {tenant!r}")


def compare_heads(report: Report, stored: Mapping[str, tuple[int, bytes]]) -> None:
    """Record every tenant whose stored chain head differs from the recomputed one."""
    for tenant in sorted(stored.keys() | report.heads.keys()):
        kept, computed = stored.get(tenant), report.heads.get(tenant)
        if kept != computed:
            if kept is None or computed is None:
                seq = (kept or computed or (0, b""))[0]
            elif kept[0] == computed[0]:
                seq = kept[0]
            else:  # the first position after the shorter chain
                seq = min(kept[0], computed[0]) + 1
            report.add(
                seq,
                f"stored chain head of tenant {tenant!r} disagrees with the log"
                " (events at its end were removed or added without the writer)",
            )


def check_unsealed(
    report: Report,
    unsealed: Iterable[LogRecord],
    now: datetime | None = None,
    grace: timedelta = UNSEALED_GRACE,
) -> None:
    """Fold committed events that have no position yet (in commit order) onto the
    report's fold, recording any whose version does not continue its job's; count them
    in `report.waiting`, and record a problem naming the oldest if it has waited past
    `grace` at `now`."""
    oldest: tuple[datetime, LogRecord] | None = None
    for record in unsealed:
        report.waiting += 1
        key = (record.tenant_id, record.job_id)
        where = f"unsealed event {record.type!r} of job {record.job_id!r} of {record.tenant_id!r}"
        if key in report.jobs and record.version != report.jobs[key].version + 1:
            expected = report.jobs[key].version + 1
            report.add(None, f"{where} has version {record.version}, expected {expected}")
            continue
        try:
            event = decode_event(record.data, record.writer_seq)
            if not is_control(event):
                report.jobs[key] = evolve(report.jobs.get(key), event)
        except (msgspec.DecodeError, ValueError, InvalidTransition) as error:
            report.add(None, f"{where} (version {record.version}) does not apply: {error}")
            continue
        if oldest is None or event.at < oldest[0]:
            oldest = (event.at, record)
    if oldest is not None and now is not None and now - oldest[0] > grace:
        at, record = oldest
        report.add(
            None,
            f"{report.waiting} event(s) still wait for a position; the oldest, {record.type!r}"
            f" of job {record.job_id!r} of {record.tenant_id!r} (written as seq"
            f" {record.writer_seq} at {at.isoformat()}), has waited {now - at}: no sequencer"
            " step numbered it (is any backend open on this queue?)",
        )
