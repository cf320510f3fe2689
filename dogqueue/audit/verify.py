"""Verification: recompute every tenant's hash chain, check the log's positions and
bytes, fold it, and compare the fold with the stored projection and a checkpoint.

The verifier trusts nothing in the log except what it recomputes: stored hashes, chain
heads and projections are all checked against the events' bytes. It reads any backend's
log through a `LogReader`. Positions are log positions (`pos`): a gap that no archival
accounts for is a deletion. Committed events that have no position yet (`unsealed()`,
PostgreSQL's tail) cannot be chained yet; their versions must continue their jobs'.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime

import msgspec

from dogqueue.audit.checkpoint import Checkpoint, cuts_head
from dogqueue.audit.compare import (
    check_unsealed,
    compare_counts,
    compare_dependencies,
    compare_heads,
    compare_projection,
    report_missing_rows,
)
from dogqueue.audit.report import Problem, Report
from dogqueue.clock import utc_now
from dogqueue.core.codec import decode_event
from dogqueue.core.controls import Controls, evolve_controls
from dogqueue.core.errors import InvalidTransition
from dogqueue.core.events import is_control
from dogqueue.core.evolve import evolve
from dogqueue.core.projection import JobKey
from dogqueue.log import archive as archival
from dogqueue.log.archive import Anchor, ArchiveCut
from dogqueue.log.chain import ChainHeads, seq_hash_digest
from dogqueue.log.reader import (
    LogReader,
    LogRecord,
)

#: Records read per page.
PAGE = 10_000


class _Ranges:
    """Inclusive seq ranges, merged, for 'is this gap archived?' questions."""

    def __init__(self, ranges: Iterable[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for first, last in sorted(ranges):
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        self._firsts = [m[0] for m in merged]
        self._lasts = [m[1] for m in merged]

    def __bool__(self) -> bool:
        return bool(self._firsts)

    @property
    def last(self) -> int:
        """The last position covered (0 if none)."""
        return self._lasts[-1] if self._lasts else 0

    def covers(self, first: int, last: int) -> bool:
        """True when every seq in [first, last] is in some range."""
        i = bisect.bisect_right(self._firsts, first) - 1
        return i >= 0 and self._lasts[i] >= last


def verify_records(
    records: Iterable[LogRecord],
    *,
    anchors: Iterable[Anchor] = (),
    archived: Iterable[tuple[int, int]] = (),
    sparse: bool = False,
    checkpoint: Checkpoint | None = None,
    audit_key: bytes | None = None,
) -> Report:
    """Recompute the chains and fold the log from `records` (in log order).

    `anchors` and `archived` come from archival; `sparse` is for an archive file, whose
    positions have gaps where the live log kept events. `audit_key`: the key of a
    keyed chain (see `dogqueue.log.chain.chain_hash`).
    """
    walk = _Walk(anchors, _Ranges(archived), sparse, checkpoint, audit_key)
    for record in records:
        walk.step(record)
        if walk.report.full:
            break
    return walk.finish()


class _Walk:
    """One pass over a log in order: positions, chains, checkpoint heads and the fold."""

    def __init__(
        self,
        anchors: Iterable[Anchor],
        archived: _Ranges,
        sparse: bool,
        checkpoint: Checkpoint | None,
        audit_key: bytes | None = None,
    ) -> None:
        self.report = Report()
        #: Each control stream's state, to check that its versions follow.
        self.controls: dict[JobKey, Controls] = {}
        self.audit_key = audit_key
        self.linked = 0
        self.anchors = sorted(anchors)
        self.next_anchor = 0
        self.archived = archived
        self.sparse = sparse
        self.checkpoint = checkpoint
        self.wanted = (
            {} if checkpoint is None else {s: (t, h) for t, (s, h) in checkpoint.heads.items()}
        )
        #: Each tenant's chain as read: heads move to the stored hash (or the computed
        #: one where none is stored), so one bad event is reported once.
        self.chain = ChainHeads(audit_key)
        self.last_tpos: dict[str, int] = {}
        self.unhashed: list[int] = []
        self.broken_jobs: set[JobKey] = set()
        self.previous_seq = 0
        #: Hashes stored at anchored positions whose events are present (an archive
        #: given with the live log): each anchor must equal its event's.
        self.anchor_seqs = {anchor.pos for anchor in self.anchors}
        self.hash_at: dict[int, bytes] = {}

    def step(self, record: LogRecord) -> None:
        self._anchors_before(record.pos)
        self.report.events += 1
        self._position(record.pos)
        self._tenant_position(record)
        self._chain(record)
        self._fold(record)

    def finish(self) -> Report:
        self._anchors_before(None)
        if not self.sparse and self.archived.last > self.previous_seq:
            self.report.add(
                self.previous_seq + 1, _unproven(self.previous_seq + 1, self.archived.last)
            )
        if self.unhashed and len(self.unhashed) == self.report.events:
            self.report.unchained = True
            self.report.add(
                self.unhashed[0],
                "no event has a chain hash: the log predates the hash chain (schema 1);"
                " open it once with this dogqueue's backend to hash it, then verify",
            )
        for seq in self.unhashed if not self.report.unchained else ():
            self.report.add(seq, f"event {seq} has no chain hash")
        if self.checkpoint is not None and not self.report.full:
            _check_checkpoint_rest(
                self.report, self.checkpoint, self.wanted, self.previous_seq, self.archived
            )
        for key in self.broken_jobs:
            self.report.jobs.pop(key, None)
        self.report.broken_jobs |= self.broken_jobs
        return self.report

    def _anchors_before(self, seq: int | None) -> None:
        """Anchors stand in for moved events: they set their tenant's previous hash."""
        while self.next_anchor < len(self.anchors) and (
            seq is None or self.anchors[self.next_anchor].pos < seq
        ):
            anchor = self.anchors[self.next_anchor]
            self.next_anchor += 1
            present = self.hash_at.get(anchor.pos)
            if present is not None:  # the event itself was read (from an archive)
                if present != anchor.hash:
                    self.report.add(
                        anchor.pos,
                        f"the anchor kept for position {anchor.pos} differs from the archived"
                        " event there",
                    )
                continue
            self.chain.move(anchor.tenant_id, anchor.pos, anchor.hash, 0)
            self.report.heads[anchor.tenant_id] = (anchor.pos, anchor.hash)
            _check_wanted(self.report, self.wanted, anchor.pos, anchor.tenant_id, anchor.hash)

    def _position(self, seq: int) -> None:
        previous = self.previous_seq
        if seq <= previous:
            self.report.add(seq, f"position {seq} is out of order after {previous}")
        elif seq > previous + 1 and not self.sparse:
            if self.archived.covers(previous + 1, seq - 1):
                self.report.add(previous + 1, _unproven(previous + 1, seq - 1))
            else:
                self.report.add(previous + 1, _missing(previous + 1, seq - 1))
        self.previous_seq = max(previous, seq)

    def _tenant_position(self, record: LogRecord) -> None:
        """Tenant positions rise with the log; without archival they are dense."""
        if not record.tpos:
            return  # the reader gives none
        previous = self.last_tpos.get(record.tenant_id, 0)
        dense = not self.sparse and not self.archived
        if record.tpos <= previous or (dense and record.tpos != previous + 1):
            self.report.add(
                record.pos,
                f"event {record.pos} has tenant position {record.tpos} after {previous}"
                f" in tenant {record.tenant_id!r}",
            )
        self.last_tpos[record.tenant_id] = max(previous, record.tpos)

    def _chain(self, record: LogRecord) -> None:
        seq = record.pos
        computed, _ = self.chain.next_link(record.tenant_id, seq, record.data)
        if record.hash is None:
            self.unhashed.append(seq)
        elif record.hash != computed:
            self.report.add(
                seq,
                f"event {seq} does not match its chain hash: its bytes, its tenant,"
                " or the event before it were changed"
                + ("" if self.linked else _KEY_HINT[self.audit_key is None]),
            )
        else:
            self.linked += 1
        # Go on from the stored hash, so one bad event is reported once, not per successor.
        self.chain.move(record.tenant_id, seq, record.hash or computed, record.tpos)
        if seq in self.anchor_seqs:
            self.hash_at[seq] = record.hash or computed
        self.report.heads[record.tenant_id] = (seq, computed)
        _check_wanted(self.report, self.wanted, seq, record.tenant_id, computed)

    def _fold(self, record: LogRecord) -> None:
        seq, key = record.pos, (record.tenant_id, record.job_id)
        if key in self.broken_jobs:
            return
        try:
            event = decode_event(record.data, seq)
        except (msgspec.DecodeError, ValueError) as error:  # ValueError: e.g. bad UTF-8
            self._broken(key, seq, f"event {seq} cannot be decoded: {error}")
            return
        identity = (event.tenant_id, event.job_id, event.version, event.type)
        if identity != (record.tenant_id, record.job_id, record.version, record.type):
            self._broken(key, seq, f"event {seq}'s columns disagree with its bytes")
            return
        try:
            if is_control(event):  # a control stream: its versions follow, no job state
                self.controls[key] = evolve_controls(self.controls.get(key, Controls()), event)
            else:
                self.report.jobs[key] = evolve(self.report.jobs.get(key), event)
        except InvalidTransition as error:
            self._broken(key, seq, f"event {seq} does not follow its job's history: {error}")

    def _broken(self, key: JobKey, seq: int, what: str) -> None:
        self.report.add(seq, what)
        self.broken_jobs.add(key)


def _missing(first: int, last: int) -> str:
    where = f"position {first}" if first == last else f"positions {first}-{last}"
    return f"{where} missing: events were deleted (no archival moved them)"


#: Said when a log's first event does not link: with or without an audit key, the
#: cause may be the key (keyed logs verify only under their key).
_KEY_HINT = {
    True: " (if the log is written with an audit key, verify with it: --key-file)",
    False: " (or the log is not written with this audit key)",
}


def _unproven(first: int, last: int) -> str:
    where = f"position {first}" if first == last else f"positions {first}-{last}"
    return (
        f"{where} were moved by archival, but no archive given holds them: give the"
        " archive file (--archive FILE) to prove the gap"
    )


def _check_wanted(
    report: Report,
    wanted: dict[int, tuple[str, bytes]],
    seq: int,
    tenant_id: str,
    digest: bytes,
) -> None:
    expected = wanted.pop(seq, None)
    if expected is not None and expected != (tenant_id, digest):
        report.add(
            seq,
            f"event {seq} differs from the checkpoint: the log was rewritten up to here",
        )


def _check_checkpoint_rest(
    report: Report,
    checkpoint: Checkpoint,
    wanted: dict[int, tuple[str, bytes]],
    last_seq: int,
    archived: _Ranges,
) -> None:
    for seq in sorted(wanted):
        if archived.covers(seq, seq):
            continue  # moved to an archive after the checkpoint; verify the archive
        report.add(
            min(seq, last_seq + 1),
            f"checkpointed event {seq} of tenant {wanted[seq][0]!r} is missing:"
            " the log was truncated or rewritten",
        )
    if checkpoint.seq > last_seq and not archived.covers(last_seq + 1, checkpoint.seq):
        report.add(
            last_seq + 1,
            f"the log ends at position {last_seq}, but the checkpoint saw {checkpoint.seq}:"
            " its tail was truncated",
        )


async def all_records(log: LogReader, *, page: int = PAGE) -> AsyncIterator[LogRecord]:
    """Every positioned record of `log`, in position order, read in pages."""
    after = 0
    while records := await log.records(after=after, limit=page):
        for record in records:
            yield record
        after = records[-1].pos


async def verify_log(
    log: LogReader,
    *,
    checkpoint: Checkpoint | None = None,
    archives: Sequence[LogReader] = (),
    audit_key: bytes | None = None,
    now: datetime | None = None,
) -> Report:
    """Verify a live log: chains, positions, fold, projection, stored chain heads, the
    unsealed tail (not OK once an event waited past UNSEALED_GRACE at `now`, default
    the system clock), the storage's integrity check, and the checkpoint if given.

    Positions moved out by archival are accepted only where one of `archives` holds
    them: the archives' events are read in log order with the live log's, as if never
    moved, so every chain, anchor and checkpoint head is checked across both. A log
    written with an audit key verifies only under `audit_key`."""
    moved: list[LogRecord] = []
    for moved_to in archives:
        moved.extend([record async for record in all_records(moved_to)])
    moved.sort(key=lambda record: record.pos)
    async with log.snapshot():
        walk = _Walk(
            await archival.anchors(log),
            _Ranges(await archival.archived_ranges(log)),
            False,
            checkpoint,
            audit_key,
        )
        async for record in _merged(all_records(log), moved, walk.report):
            walk.step(record)
            if walk.report.full:
                break
        report = walk.finish()
        if not report.full:
            if not report.unchained:
                compare_heads(report, await log.chain_heads())
            check_unsealed(report, await log.unsealed(), now or utc_now())
            seen: set[JobKey] = set()
            rows = await log.projection_rows()
            compare_projection(report, rows, seen=seen)
            compare_counts(report, rows, await log.status_counts())
            for moved_to in archives:
                compare_projection(
                    report,
                    await moved_to.projection_rows(),
                    label="archived state",
                    keys_released=True,
                    seen=seen,
                )
            report_missing_rows(report, seen)
            live = {(str(row.tenant_id), str(row.job_id)) for row in rows}
            compare_dependencies(report, await log.dependencies(), live)
        if checkpoint is not None and checkpoint.cuts is not None:
            _check_cuts(report, checkpoint.cuts, await archival.archive_cuts(log))
    for line in await archival.integrity_problems(log):
        report.add(None, f"integrity check: {line}")
    return report


async def _merged(
    live: AsyncIterator[LogRecord], moved: list[LogRecord], report: Report
) -> AsyncIterator[LogRecord]:
    """The live records and the archived ones, in position order. A position in both
    (a copy left by an interrupted archival) must hold the same event."""
    index = 0
    async for record in live:
        while index < len(moved) and moved[index].pos <= record.pos:
            copy = moved[index]
            index += 1
            if copy.pos < record.pos:
                yield copy
            elif copy[:7] != record[:7]:
                report.add(
                    copy.pos,
                    f"position {copy.pos} holds different events in the live log and an archive",
                )
        yield record
    for copy in moved[index:]:
        yield copy


def _check_cuts(report: Report, wanted: tuple[int, bytes], cuts: list[ArchiveCut]) -> None:
    """The archivals recorded up to a checkpoint must be the ones it saw."""
    count, digest = wanted
    if len(cuts) < count or cuts_head(cuts[:count]) != (count, digest):
        report.add(
            None,
            f"the log's first {count} archival record(s) differ from the checkpoint's:"
            " archival records were forged, changed or removed",
        )


async def verify_archive(
    archive: LogReader, live: LogReader | None = None, *, audit_key: bytes | None = None
) -> Report:
    """Verify an archive on its own, and, given the live log it came from, that the
    live log recorded a cut matching the archive's contents."""
    records = [record async for record in all_records(archive)]
    report = verify_records(
        records, anchors=await archival.anchors(archive), sparse=True, audit_key=audit_key
    )
    if not report.full:
        compare_projection(
            report, await archive.projection_rows(), label="archived state", keys_released=True
        )
    for line in await archival.integrity_problems(archive):
        report.add(None, f"integrity check: {line}")
    if live is not None:
        digest = seq_hash_digest((r.pos, r.hash or b"") for r in records)
        if not any(
            cut.archive_events == len(records) and bytes(cut.archive_digest) == digest
            for cut in await archival.archive_cuts(live)
        ):
            report.add(
                None,
                "the live log records no archival that matches this archive's events"
                " (events were added to or removed from the archive)",
            )
    return report


async def is_archive(log: LogReader) -> bool:
    """True for a log written by archival: it records cuts but no moved ranges."""
    return bool(await archival.archive_cuts(log)) and not await archival.archived_ranges(log)


__all__ = [
    "Problem",
    "Report",
    "check_unsealed",
    "compare_counts",
    "compare_dependencies",
    "compare_heads",
    "compare_projection",
    "is_archive",
    "seq_hash_digest",
    "verify_archive",
    "verify_log",
    "verify_records",
]
