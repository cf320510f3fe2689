"""The log reader every backend returns (`Backend.log_reader`), read back after several
tenants' work through more than one handle on the same storage: log positions dense
1..N in log order, tenant positions dense per tenant, chains that link and verify, no
archival (`dogqueue.log.archive` answers alike with or without the capability), and
the unsealed tail as `dogqueue.log.reader` documents it (committed events without a
position yet, never also among the records, gone once the writer's own are numbered)."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import timedelta

from dogqueue import FakeClock, QueueCtx
from dogqueue.audit.verify import verify_log
from dogqueue.backend.contract import Backend
from dogqueue.log import archive
from dogqueue.log.chain import GENESIS, chain_hash
from dogqueue.log.reader import LogReader, LogRecord
from dogqueue.testing.factories import BackendFactory

from .helpers import message

TENANTS = [QueueCtx("acme"), QueueCtx("globex"), QueueCtx("initech")]


async def tenants_work(backend: Backend, clock: FakeClock) -> None:
    """Enqueues, leases, completions, failures with retries and a cancel per tenant."""
    for round_ in range(3):
        for ctx in TENANTS:
            ids = await backend.enqueue_many(ctx, [message(max_retries=1) for _ in range(3)])
            lease = await backend.dequeue(ctx, ["default"])
            assert lease is not None
            if round_ % 2:
                await backend.ack_fail(ctx, lease, "flaky")
            else:
                await backend.ack_complete(ctx, lease)
            await backend.cancel_job(ctx, ids[-1])
        clock.advance(timedelta(minutes=5))


async def all_records(log: LogReader) -> tuple[list[LogRecord], list[LogRecord]]:
    """The numbered records and the unsealed tail, in one committed state."""
    async with log.snapshot():
        return await log.records(), await log.unsealed()


async def test_log_and_tenant_positions_are_dense_and_chains_verify(
    backend: Backend, clock: FakeClock
) -> None:
    await tenants_work(backend, clock)
    log = backend.log_reader()
    try:
        records, unsealed = await all_records(log)
        assert unsealed == []  # this backend's own events are all numbered
        assert [r.pos for r in records] == list(range(1, len(records) + 1))
        assert await log.last_position() == len(records)
        events = await backend.read_events()
        assert [(r.pos, r.tenant_id, r.job_id, r.version, r.type) for r in records] == [
            (e.seq, e.tenant_id, e.job_id, e.version, e.type) for e in events
        ]
        assert await log.events() == events
        assert await log.events(after=5, limit=7) == events[5:12]

        by_tenant: dict[str, list[LogRecord]] = defaultdict(list)
        for record in records:
            by_tenant[record.tenant_id].append(record)
        assert set(by_tenant) == {ctx.tenant_id for ctx in TENANTS}
        for tenant_id, mine in by_tenant.items():
            assert [r.tpos for r in mine] == list(range(1, len(mine) + 1))
            shown = await log.tenant_events(tenant_id)
            assert [(e.seq, e.job_id, e.version) for e in shown] == [
                (r.tpos, r.job_id, r.version) for r in mine
            ]

        previous: dict[str, bytes] = {}
        audit_key = getattr(backend, "audit_key", None)
        for record in records:
            assert record.hash == chain_hash(
                previous.get(record.tenant_id, GENESIS), record.pos, record.data, audit_key
            ), f"the chain breaks at position {record.pos}"
            previous[record.tenant_id] = record.hash
        heads = await log.chain_heads()
        assert {tenant: head[1] for tenant, head in heads.items()} == previous
        report = await verify_log(log, audit_key=audit_key)
        assert report.ok, report.problems
        assert report.events == len(records)
        # Nothing archived yet: a reader with the archival capability or without it is
        # read as a log that never archived, whose storage reports nothing wrong.
        assert await archive.anchors(log) == []
        assert await archive.archived_ranges(log) == []
        assert await archive.archive_cuts(log) == []
        assert await archive.integrity_problems(log) == []
    finally:
        await log.close()


async def test_the_unsealed_tail_and_the_records_never_overlap(
    backend: Backend, clock: FakeClock
) -> None:
    polling = backend.log_reader(wait_for_own_writes=False)
    waiting = backend.log_reader()
    try:
        written = 0
        for ctx in TENANTS:
            await backend.enqueue_many(ctx, [message() for _ in range(5)])
            written += 5
            records, unsealed = await all_records(polling)
            # Every committed event is numbered or in the tail, never both.
            assert len(records) + len(unsealed) == written
            assert [r.pos for r in records] == list(range(1, len(records) + 1))
            assert {(r.job_id, r.version) for r in records}.isdisjoint(
                (r.job_id, r.version) for r in unsealed
            )
            assert all(r.hash is None and r.tpos == 0 for r in unsealed)
            # A reader that waits for the backend's own writes sees them all numbered.
            records, unsealed = await all_records(waiting)
            assert unsealed == [] and len(records) == written
    finally:
        await polling.close()
        await waiting.close()


async def test_the_unsealed_tail_shows_each_event_as_documented_then_seals(
    backend: Backend, backend_factory: BackendFactory, clock: FakeClock
) -> None:
    """Events in the unsealed tail carry every field as `LogRecord` documents it and
    become the next records byte for byte once sealed. Where the factory can hold sealing
    back (a backend that numbers events after the commit) every event committed meanwhile
    must be in the tail; elsewhere whatever a reader that never waits sees there (nothing,
    on a backend whose tail is always sealed) must obey the same rules."""
    hold = getattr(backend_factory, "hold_back_sealing", None)
    acme, globex = TENANTS[0], TENANTS[1]
    await backend.enqueue(acme, message())
    before = len(await backend.read_events())
    polling = backend.log_reader(wait_for_own_writes=False)
    waiting = backend.log_reader()
    try:
        async with hold(backend) if hold is not None else contextlib.nullcontext():
            await backend.enqueue_many(globex, [message(payload=b"\xff\x00"), message("other")])
            lease = await backend.dequeue(acme, ["default"])
            assert lease is not None
            await backend.ack_complete(acme, lease)
            records, tail = await all_records(polling)
        assert [r.pos for r in records] == list(range(1, len(records) + 1))
        assert all(r.pos == 0 and r.hash is None and r.tpos == 0 for r in tail)
        seqs = [r.writer_seq for r in tail]
        assert all(seq > 0 for seq in seqs) and len(set(seqs)) == len(seqs)
        sealed_then = {(r.tenant_id, r.job_id, r.version) for r in records}
        records, left = await all_records(waiting)
        assert left == [] and all(r.writer_seq == 0 for r in records)
        sealed = {(r.tenant_id, r.job_id, r.version, r.type, r.data) for r in records[before:]}
        shown = {(r.tenant_id, r.job_id, r.version, r.type, r.data) for r in tail}
        assert shown <= sealed and not {item[:3] for item in shown} & sealed_then
        events = (await backend.read_events())[before:]
        assert {(e.tenant_id, e.job_id, e.version, e.type) for e in events} == {
            item[:4] for item in sealed
        }
        if hold is not None:
            assert len(records) - len(tail) == before and shown == sealed
            assert {r.tenant_id for r in tail} == {acme.tenant_id, globex.tenant_id}
    finally:
        await polling.close()
        await waiting.close()
