"""Archival's rules, shared by every log that archives (SQLite, Redis): which jobs move
out before a cut, and what a cut leaves behind in the live log and writes to the archive
(the moved events, and anchors: the hashes of events a kept chain links to but that are
not where it is read). Pure: the callers read their storage and write the results."""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from dogqueue.core.cron import schedule_name_of_key
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey


@dataclass(frozen=True)
class ArchiveResult:
    """What one archival moved."""

    jobs: int
    events: int
    archive: str


class Item(NamedTuple):
    """One entry of the live log in position order: an event (its archive row is
    seq, tenant_id, job_id, version, type, data, hash, tpos) or an anchor left by an
    earlier cut (`is_anchor`, no row)."""

    seq: int
    tenant_id: str
    job_id: str
    row: tuple[Any, ...]
    hash: bytes
    is_anchor: bool


@dataclass
class Plan:
    """What a cut moves and what it leaves: the archive rows and anchors to write, the
    positions moved, the live log's anchors afterwards, and the last moved hash."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    archive_anchors: list[tuple[int, str, bytes]] = field(default_factory=list)
    moved_seqs: list[int] = field(default_factory=list)
    live_anchors: list[tuple[int, str, bytes]] = field(default_factory=list)
    head: bytes = b""


def finished_before(jobs: list[JobInfo], cut: datetime) -> dict[JobKey, JobInfo]:
    """The jobs that became terminal before `cut`, except each schedule's newest tick."""
    newest = newest_ticks(jobs)
    return {
        (job.tenant_id, job.job_id): job
        for job in jobs
        if job.status.is_terminal
        and job.finished_at is not None
        and job.finished_at < cut
        and (job.tenant_id, job.job_id) not in newest
    }


def newest_ticks(jobs: list[JobInfo]) -> set[JobKey]:
    """The job of each schedule's newest tick, per tenant: it stays in the live log, so
    that its key keeps the ticks before it (within `catch_up`) from being enqueued again."""
    newest: dict[tuple[str, str], tuple[str, JobKey]] = {}
    for job in jobs:
        key = job.message.idempotency_key
        name = schedule_name_of_key(key)
        if name is None or key is None:
            continue
        kept = newest.get((job.tenant_id, name))
        if kept is None or key > kept[0]:
            newest[(job.tenant_id, name)] = (key, (job.tenant_id, job.job_id))
    return {job for _, job in newest.values()}


class _Last(NamedTuple):
    seq: int
    hash: bytes
    kind: str  # "keep", "move" or "anchor"


def plan_cut(items: Iterable[Item], moved: Container[JobKey]) -> Plan:
    """Walk the live log (`items`, in position order) and say what moving the jobs
    `moved` writes: an archived event whose tenant's previous entry stays behind gets
    that entry's hash as an archive anchor; a kept event after moved ones, and a tenant
    whose head moved, get the live anchor their link needs."""
    plan = Plan()
    last: dict[str, _Last] = {}
    live: dict[int, tuple[str, bytes]] = {}
    for item in items:
        previous = last.get(item.tenant_id)
        if item.is_anchor:
            last[item.tenant_id] = _Last(item.seq, item.hash, "anchor")
        elif (item.tenant_id, item.job_id) in moved:
            plan.rows.append(item.row)
            if previous is not None and previous.kind != "move":
                plan.archive_anchors.append((previous.seq, item.tenant_id, previous.hash))
            plan.moved_seqs.append(item.seq)
            plan.head = item.hash
            last[item.tenant_id] = _Last(item.seq, item.hash, "move")
        else:
            if previous is not None and previous.kind != "keep":
                live[previous.seq] = (item.tenant_id, previous.hash)
            last[item.tenant_id] = _Last(item.seq, item.hash, "keep")
    for tenant_id, entry in last.items():
        if entry.kind != "keep":  # the tenant's head moved: its next event links to it
            live[entry.seq] = (tenant_id, entry.hash)
    plan.live_anchors = [(seq, tenant, digest) for seq, (tenant, digest) in sorted(live.items())]
    return plan


def runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted positions, as inclusive ranges."""
    found: list[tuple[int, int]] = []
    for seq in seqs:
        if found and found[-1][1] == seq - 1:
            found[-1] = (found[-1][0], seq)
        else:
            found.append((seq, seq))
    return found


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges merged where they overlap or touch, in order."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged
