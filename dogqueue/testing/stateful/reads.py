"""The read side after every step: the log reader (records, events, paging, tenant
positions, stored projection rows, dependencies, chain heads) and the worker hints
(`ready_tenants`, `next_run_at`), each compared with the model or the log it must equal."""

from __future__ import annotations

from typing import Any

import msgspec

from dogqueue.core.codec import decode_event
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.workers import WorkerPresence
from dogqueue.log import archive
from dogqueue.log.chain import GENESIS, HASH_SIZE, chain_hash
from dogqueue.log.reader import PROJECTED_COLUMNS, LogReader, projected_columns
from dogqueue.log.stored import stored_job
from dogqueue.testing.model import ENQUEUED
from dogqueue.testing.stateful.common import QUEUE_CHOICES, TENANTS
from dogqueue.testing.stateful.coverage import called, compared, drawn, reasoned
from dogqueue.testing.stateful.operations import Operations

Jobs = dict[tuple[str, str], JobInfo]
_EVERY = "after every step"
drawn("Backend.log_reader", "wait_for_own_writes", "True (default) and False, alternately")
compared("Backend.log_reader", "return", "every LogReader row below")
drawn(["LogReader.records", "LogReader.events"], ["after", "limit"], "0/None and pages of 1-3")
compared(
    "LogReader.records",
    ["pos", "tenant_id", "job_id", "version", "type", "tpos"],
    f"those of read_events() (pos: the event's seq; tpos: the tenant position), {_EVERY}",
)
compared("LogReader.records", "writer_seq", "0 on every sealed record")
_BROWSER_REASON = (
    "the dashboard's read model, not the log: the shipped"
    " dogqueue/testing/conformance/test_read_models_agree.py compares it with stats and"
    " metrics on every backend after leases, releases, retries, workflows and cancels"
)
reasoned("Backend.browser", "call", "()", _BROWSER_REASON)
reasoned("Backend.browser", "field", "return", _BROWSER_REASON)
compared("LogReader.records", "data", "decodes to the event read_events() returns")
compared(
    "LogReader.records",
    "hash",
    "32 bytes, none repeated, each the documented link from its tenant's previous (an"
    " HMAC under the factory's `audit_key`, if any); the last one is chain_heads()' hash",
)
compared("LogReader.events", "*", f"equal to read_events(), whole and paged, {_EVERY}")
reasoned(
    "LogReader.unsealed",
    "field",
    "*",
    "checked empty after every step (only PostgreSQL has unsealed events, never its own"
    " after a read): the shipped dogqueue/testing/conformance/test_log_reader.py checks"
    " every field of a tail the factory's `hold_back_sealing` holds back, and of whatever"
    " tail a reader that never waits sees on any backend",
)
compared("LogReader.last_position", "return", "the position of the last event read")
drawn(["LogReader.tenant_events", "LogReader.jobs"], "tenant_id", "both tenants (and None)")
compared(
    "LogReader.tenant_events",
    "*",
    "seq exactly 1..N in log order; else equal to the tenant's events of read_events()",
)
drawn("LogReader.history", ["tenant_id", "job_id"], "every job changed by the step")
compared("LogReader.history", "*", "the job's events of tenant_events, tenant positions")
compared("LogReader.jobs", "*", "projected_jobs() in enqueue order; per tenant, get_job's")
compared(
    "LogReader.projection_rows",
    [*PROJECTED_COLUMNS, "state", "enqueue_seq"],
    "projected_columns() of the projected job; state decodes to it",
)
compared("LogReader.status_counts", "return", "counted from the projection (or None)")
compared("LogReader.dependencies", "return", "the model's (tenant, parent, child) triples")
compared("LogReader.chain_heads", ["key", "return"], "each tenant's last record: position and hash")
called("LogReader.unsealed", "after every step, inside the step's snapshot")
compared("LogReader.snapshot", "return", "every read of the step runs inside one snapshot")
called("LogReader.close", "each step's reader is closed; the backend stays open and is read")
drawn("Backend.ready_tenants", "queues", "each queue and both, in turn after every step")
compared("Backend.ready_tenants", "return", f"the tenants with a job the model can lease, {_EVERY}")
drawn(
    "Backend.next_run_at",
    ["queues", "tenant_ids"],
    "each queue and both; None and each tenant, in turn after every step",
)
compared(
    "Backend.next_run_at", "return", f"the model's earliest run_at of an ENQUEUED job, {_EVERY}"
)


async def _read_log(reader: LogReader, after: int, limit: int) -> dict[str, Any]:
    """Everything the reader shows, read inside one snapshot."""
    async with reader.snapshot():
        seen: dict[str, Any] = {
            "records": await reader.records(),
            "events": await reader.events(),
            "records_page": await reader.records(after=after, limit=limit),
            "events_page": await reader.events(after=after, limit=limit),
            "unsealed": await reader.unsealed(),
            "last": await reader.last_position(),
            "jobs": await reader.jobs(),
            "rows": await reader.projection_rows(),
            "dependencies": await reader.dependencies(),
            "heads": await reader.chain_heads(),
            "archived": (
                await archive.anchors(reader),
                await archive.archived_ranges(reader),
                await archive.archive_cuts(reader),
            ),
            "problems": await archive.integrity_problems(reader),
        }
        for tenant in TENANTS:
            seen[f"events:{tenant}"] = await reader.tenant_events(tenant)
            seen[f"jobs:{tenant}"] = await reader.jobs(tenant)
    return seen


def check_chain(records: list[Any], key: bytes | None, verified: dict[int, Any]) -> None:
    """Every record is chained: a hash of HASH_SIZE bytes, none repeated, each the
    documented link from its tenant's previous one (an HMAC under `key`, the audit key
    the factory's backends use, if any). A record equal to one verified at an earlier
    step (`verified`, by position) is not hashed again."""
    hashes = [record.hash for record in records]
    assert all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes), "a record's hash"
    assert len(set(hashes)) == len(hashes), "two records with one hash"
    previous: dict[str, bytes] = {}
    for record in records:
        if verified.get(record.pos) != record:
            link = chain_hash(previous.get(record.tenant_id, GENESIS), record.pos, record.data, key)
            assert link == record.hash, (
                f"record {record.pos}: its hash does not link to its tenant's previous one"
            )
        previous[record.tenant_id] = record.hash


class ReadChecks(Operations):
    """The log reader and the worker hints against the model and the log."""

    reads = 0
    #: Records checked at an earlier step, by position: equal ones are not decoded again.
    verified: dict[int, Any]

    def check_reads(
        self, log: list[AnyEvent], projected: Jobs, touched: list[tuple[str, str]]
    ) -> None:
        """Every LogReader method against `log` (read_events()) and `projected`."""
        self.reads += 1
        if self.reads == 1:
            self.verified = {}
        reader = self.backend.log_reader(wait_for_own_writes=self.reads % 2 == 0)
        after = log[len(log) // 2].seq - 1 if log else 0
        limit = 1 + self.reads % 3
        try:
            seen = self.run(_read_log(reader, after, limit))
            histories = {key: self.run(reader.history(*key)) for key in touched}
        finally:
            self.run(reader.close())
        page = [event for event in log if event.seq > after][:limit]
        assert seen["events"] == log, "LogReader.events() != read_events()"
        assert seen["events_page"] == page, f"LogReader.events({after}, {limit}) != the page"
        paged = self.run(self.backend.read_events(after_seq=after, limit=limit))
        assert paged == page, f"read_events({after}, {limit}) != that page of read_events()"
        assert [r.pos for r in seen["records_page"]] == [e.seq for e in page], "records page"
        assert seen["unsealed"] == [], f"unsealed events after a step: {seen['unsealed']}"
        assert seen["last"] == (log[-1].seq if log else 0), f"last_position {seen['last']}"
        assert seen["problems"] == [], f"integrity problems: {seen['problems']}"
        assert seen["archived"] == ([], [], []), f"archival rows: {seen['archived']}"
        tenant_logs = self.check_tenant_positions(log, seen)
        # A factory whose backends chain with an audit key says so in `audit_key`.
        audit_key = getattr(self.factory, "audit_key", None)
        self.check_records(audit_key, log, seen["records"], seen["heads"], tenant_logs)
        self.check_reader_jobs(projected, seen, tenant_logs)
        for (tenant, job_id), events in histories.items():
            mine = [event for event in tenant_logs[tenant] if event.job_id == job_id]
            assert events == mine, f"LogReader.history of {job_id} != its tenant events"
        self.check_stored_rows(projected, seen["rows"], seen["dependencies"])
        self.check_worker_hints()

    @staticmethod
    def check_tenant_positions(
        log: list[AnyEvent], seen: dict[str, Any]
    ) -> dict[str, list[AnyEvent]]:
        """Each tenant's events carry positions exactly 1..N in log order, and are the
        log's events of that tenant."""
        tenant_logs: dict[str, list[AnyEvent]] = {}
        for tenant in TENANTS:
            events: list[AnyEvent] = seen[f"events:{tenant}"]
            positions = [event.seq for event in events]
            assert positions == list(range(1, len(events) + 1)), (
                f"tenant positions of {tenant}: {positions}"
            )
            mine = [e for e in log if e.tenant_id == tenant]
            unnumbered = [msgspec.structs.replace(e, seq=0) for e in events]
            assert unnumbered == [msgspec.structs.replace(e, seq=0) for e in mine], (
                f"tenant_events({tenant}) != the tenant's events of read_events()"
            )
            tenant_logs[tenant] = events
        return tenant_logs

    def check_records(
        self,
        audit_key: bytes | None,
        log: list[AnyEvent],
        records: list[Any],
        heads: dict[str, tuple[int, bytes]],
        tenant_logs: dict[str, list[AnyEvent]],
    ) -> None:
        assert len(records) == len(log), f"{len(records)} records, {len(log)} events"
        tpos = {event.seq: 0 for event in log}
        for tenant, events in tenant_logs.items():
            mine = [e for e in log if e.tenant_id == tenant]
            tpos.update({e.seq: t.seq for e, t in zip(mine, events, strict=True)})
        check_chain(records, audit_key, self.verified)
        last: dict[str, Any] = {}
        for record, event in zip(records, log, strict=True):
            row = (record.pos, record.tenant_id, record.job_id, record.version, record.type)
            wanted = (event.seq, event.tenant_id, event.job_id, event.version, event.type)
            assert row == wanted, f"record {row} != event {wanted}"
            assert record.tpos == tpos[event.seq], f"record {record.pos}: tpos {record.tpos}"
            assert record.writer_seq == 0, f"record {record.pos}: writer_seq {record.writer_seq}"
            if self.verified.get(record.pos) != record:  # else decoded at an earlier step
                assert decode_event(record.data, record.pos) == event, f"record {record.pos}"
                self.verified[record.pos] = record
            last[record.tenant_id] = record
        ends = {tenant: (r.pos, r.hash) for tenant, r in last.items()}
        assert heads == ends, f"chain heads {heads} != the tenants' last records {ends}"

    def check_reader_jobs(
        self, projected: Jobs, seen: dict[str, Any], tenant_logs: dict[str, list[AnyEvent]]
    ) -> None:
        in_order = sorted(projected.values(), key=lambda job: job.enqueue_seq)
        assert seen["jobs"] == in_order, "LogReader.jobs() != projected_jobs() in enqueue order"
        for tenant in TENANTS:
            enqueued = {e.job_id: e.seq for e in tenant_logs[tenant] if e.type == "enqueued"}
            mine = [
                msgspec.structs.replace(job, enqueue_seq=enqueued[job.job_id])
                for job in in_order
                if job.tenant_id == tenant
            ]
            assert seen[f"jobs:{tenant}"] == mine, f"LogReader.jobs({tenant!r}) != get_job's"

    def check_stored_rows(
        self, projected: Jobs, rows: list[Any], dependencies: list[tuple[str, str, str]]
    ) -> None:
        assert len(rows) == len(projected), f"{len(rows)} projection rows"
        for row in rows:
            job = projected[(row.tenant_id, row.job_id)]
            stored = {column: getattr(row, column) for column in PROJECTED_COLUMNS}
            assert stored == projected_columns(job), f"projection row of {row.job_id}"
            state = stored_job(row.state, str(row.job_id))
            assert row.enqueue_seq == state.enqueue_seq, f"row {row.job_id}: enqueue_seq"
            assert msgspec.structs.replace(state, enqueue_seq=job.enqueue_seq) == job
        wanted = sorted(
            (job.tenant, parent, job.job_id)
            for job in self.model.jobs.values()
            for parent in job.parents
        )
        assert sorted(dependencies) == wanted, f"dependencies {dependencies} != {wanted}"

    def check_worker_hints(self) -> None:
        """ready_tenants and next_run_at are the model's, for one queue choice and one
        tenant (and all) a step, in turn."""
        now = self.clock()
        for queues in [QUEUE_CHOICES[self.reads % len(QUEUE_CHOICES)]]:
            ready = self.run(self.backend.ready_tenants(list(queues)))
            assert len(set(ready)) == len(ready), f"ready_tenants repeats one: {ready}"
            wanted = [t for t in TENANTS if self.model.ready_in_order(t, list(queues), now)]
            assert sorted(ready) == wanted, f"ready_tenants({queues}) {ready} != {wanted}"
            for tenants in (None, [TENANTS[self.reads // len(QUEUE_CHOICES) % len(TENANTS)]]):
                times = [
                    job.run_at
                    for job in self.model.jobs.values()
                    if job.status == ENQUEUED
                    and job.queue in queues
                    and (tenants is None or job.tenant in tenants)
                ]
                got = self.run(self.backend.next_run_at(list(queues), tenants))
                assert got == min(times, default=None), (
                    f"next_run_at({queues}, {tenants}) {got} != {min(times, default=None)}"
                )


_PRESENCE_REASON = (
    "workers' presence records live beside the log, not in it, and no job state depends on"
    " them: the shipped dogqueue/testing/conformance/test_workers.py replaces, reads by"
    " recency, forgets and refuses them field by field on every backend"
)
reasoned(["Backend.announce_worker", "Backend.read_workers"], "call", "()", _PRESENCE_REASON)
reasoned(
    "Backend.announce_worker",
    "param",
    [f"presence.{name}" for name in WorkerPresence.__struct_fields__],
    _PRESENCE_REASON,
)
reasoned("Backend.read_workers", "param", "seen_since", _PRESENCE_REASON)
reasoned("Backend.read_workers", "field", "*", _PRESENCE_REASON)
