"""What the SQLite writer asks of the database per transaction: a settled batch loads its
jobs with one query, and what the writer remembers between its transactions is used only
while no other connection has written."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from dogqueue import Completion, Failure, JobMessage, JobStatus, QueueCtx, rebuild
from dogqueue.audit.verify import verify_log
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.log import SqliteLogReader
from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import SqliteTransaction
from dogqueue.core.errors import JobAlreadyExists

CTX = QueueCtx("acme")


def _message() -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}", max_retries=0)


@contextmanager
def _statements(backend: SqliteBackend) -> Iterator[list[str]]:
    """The statements the backend's writer connection runs inside the block."""
    seen: list[str] = []
    conn = backend.writer._conn
    assert conn is not None
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def _count(statements: list[str], name: str) -> int:
    """How many of the traced statements (parameters filled in) ran query `name`."""
    head = _head(Q[name])
    return sum(1 for statement in statements if _text(statement).startswith(head))


def _text(statement: str) -> str:
    return " ".join(line for line in statement.splitlines() if not line.startswith("--"))


def _head(statement: str) -> str:
    """A statement's text up to its first parameter, without comment lines."""
    return _text(statement).split("?")[0].split("'")[0].strip()


async def test_a_settled_batch_writes_only_events(tmp_path: Path) -> None:
    """Log first: the writer reads its jobs from memory and appends events; the job
    tables are a checkpoint written elsewhere (`catchup`)."""
    async with SqliteBackend(tmp_path / "q.db") as backend:
        await backend.enqueue_many(CTX, [_message() for _ in range(6)])
        leases = await backend.dequeue_many(CTX, ["default"], 6)
        batch = [
            Completion(lease=lease) if i % 2 else Failure(lease=lease, error="boom", retry=False)
            for i, lease in enumerate(leases)
        ]
        with _statements(backend) as statements:
            results = await backend.settle_many(CTX, batch)
        assert results == [JobStatus.FAILED, JobStatus.COMPLETED] * 3
        touching = [s for s in statements if re.search(r"\b(jobs|job_counts|job_edges)\b", s)]
        assert touching == []
        assert sum(s.startswith("INSERT INTO events") for s in statements) == 6
        # The same job twice: the second is loaded as the first left it, and refused.
        again = await backend.settle_many(CTX, [Completion(lease=leases[1])] * 2)
        assert all(not isinstance(result, JobStatus) for result in again)


async def test_a_job_settled_twice_in_one_batch_is_read_after_its_first_settlement(
    tmp_path: Path,
) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        await backend.enqueue_many(CTX, [_message() for _ in range(2)])
        first, second = await backend.dequeue_many(CTX, ["default"], 2)
        results = await backend.settle_many(
            CTX, [Completion(lease=first), Completion(lease=second), Completion(lease=first)]
        )
        assert results[:2] == [JobStatus.COMPLETED, JobStatus.COMPLETED]
        assert not isinstance(results[2], JobStatus)
        events = await backend.read_events()
        assert [e.type for e in events].count("completed") == 2
        report = await verify_log(SqliteLogReader(tmp_path / "q.db"))
        assert report.ok, report.problems


async def test_a_settled_batch_still_settles_the_dependents_of_its_jobs(tmp_path: Path) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        first, second = await backend.enqueue_many(CTX, [_message(), _message()])
        child = await backend.enqueue(
            CTX, JobMessage(job_type="t", payload_bytes=b"{}", after=(first, second))
        )
        leases = await backend.dequeue_many(CTX, ["default"], 2)
        assert {lease.job_id for lease in leases} == {first, second}
        assert (await backend.get_job(CTX, child)).status is JobStatus.WAITING
        await backend.settle_many(CTX, [Completion(lease=lease) for lease in leases])
        assert (await backend.get_job(CTX, child)).status is JobStatus.ENQUEUED
        report = await verify_log(SqliteLogReader(tmp_path / "q.db"))
        assert report.ok, report.problems


async def test_the_writer_reads_the_end_of_the_log_only_after_another_connection_wrote(
    tmp_path: Path,
) -> None:
    async with SqliteBackend(tmp_path / "q.db") as backend:
        await backend.enqueue(CTX, _message())
        with _statements(backend) as statements:
            await backend.enqueue(CTX, _message())
            await backend.enqueue(QueueCtx("globex"), _message())
            await backend.enqueue(QueueCtx("globex"), _message())
        assert _count(statements, "next_seq") == 0
        assert _count(statements, "chain_head") == 1  # globex's, once
        async with SqliteBackend(tmp_path / "q.db") as other:
            await other.enqueue(CTX, _message())
        with _statements(backend) as statements:
            await backend.enqueue(CTX, _message())
        assert _count(statements, "next_seq") == 1
        # The heads it holds move to the events the other appended, read once.
        assert _count(statements, "events_heads_after") == 1
        assert _count(statements, "chain_head") == 0
        assert _count(statements, "set_chain_head") == _count(statements, "fold_chain_heads") == 0


async def test_writers_of_two_connections_taking_turns_keep_one_chain(tmp_path: Path) -> None:
    """Each writer's remembered end of the log goes stale when the other commits: the
    positions stay unique and consecutive and every tenant's chain verifies."""
    path = tmp_path / "q.db"
    async with SqliteBackend(path) as first, SqliteBackend(path) as second:
        for turn in range(12):
            writer = (first, second)[turn % 2]
            tenant = QueueCtx(("acme", "globex")[turn // 2 % 2])
            await writer.enqueue_many(tenant, [_message(), _message()])
            leases = await writer.dequeue_many(tenant, ["default"], 1)
            await writer.settle_many(tenant, [Completion(lease=lease) for lease in leases])
        events = await first.read_events()
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
    report = await verify_log(SqliteLogReader(path))
    assert report.ok, report.problems
    assert report.events == 12 * 4


async def test_a_rolled_back_transaction_leaves_nothing_remembered(tmp_path: Path) -> None:
    """A unit that appended and then broke rolls its batch back: the chain head it had
    moved must not be what the next transaction links to."""
    path = tmp_path / "q.db"
    async with SqliteBackend(path) as backend:
        await backend.enqueue(CTX, _message())
        (enqueued,) = await backend.read_events()

        def append_then_break(tx: SqliteTransaction, now: object) -> None:
            tx.append(enqueued)
            raise RuntimeError("broken after a write")

        results = await asyncio.gather(
            backend.writer.run(append_then_break),
            backend.enqueue(CTX, _message()),
            return_exceptions=True,
        )
        assert isinstance(results[0], RuntimeError) and isinstance(results[1], str)
        await backend.enqueue(CTX, _message())
        events = await backend.read_events()
        assert [event.seq for event in events] == [1, 2, 3]
    report = await verify_log(SqliteLogReader(path))
    assert report.ok, report.problems


async def test_a_unit_reads_the_job_rows_an_earlier_unit_of_its_batch_wrote(
    tmp_path: Path,
) -> None:
    """Job rows are buffered until a query reads them: an enqueue and a dequeue sent
    together share one transaction, and the dequeue leases the job just enqueued; the
    second of two enqueues of one key in one transaction finds the first's job."""

    async with SqliteBackend(tmp_path / "q.db") as backend:
        # Opened, migrated and idle, with nothing ready in "default".
        await backend.enqueue(CTX, JobMessage(job_type="t", payload_bytes=b"{}", queue="other"))
        commits = backend.writer.commits
        enqueued, lease = await asyncio.gather(
            backend.enqueue(CTX, _message()), backend.dequeue(CTX, ["default"])
        )
        assert lease is not None and lease.job_id == enqueued
        keyed = JobMessage(job_type="t", payload_bytes=b"{}", idempotency_key="order-1")
        first, second = await asyncio.gather(
            backend.enqueue(CTX, keyed), backend.enqueue(CTX, keyed), return_exceptions=True
        )
        assert backend.writer.commits == commits + 2  # one transaction each, nothing re-run
        assert isinstance(first, str)
        assert isinstance(second, JobAlreadyExists) and second.job_id == first


def test_the_log_refuses_a_second_enqueued_event_with_a_key_held(tmp_path: Path) -> None:
    """Idempotency is a unique constraint on the log: not even a writer that skips the
    engine can give one key to two jobs of a tenant."""
    path = tmp_path / "q.db"
    asyncio.run(_enqueue_one(path, idempotency_key="order-1"))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        row = conn.execute(
            "SELECT tenant_id, type, data FROM events WHERE idempotency_key = 'order-1'"
        ).fetchone()
        assert row is not None
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO events (seq, tenant_id, job_id, version, type, data, idempotency_key)"
                " VALUES (99, ?, 'another', 1, ?, ?, 'order-1')",
                row,
            )
        tx = SqliteTransaction(conn)
        tx.begin()
        assert tx.job_for_key(CTX.tenant_id, "order-1") is not None
        tx.rollback()
    finally:
        conn.close()


async def _enqueue_one(path: Path, idempotency_key: str | None = None) -> None:
    async with SqliteBackend(path) as backend:
        await backend.enqueue(
            CTX, msgspec.structs.replace(_message(), idempotency_key=idempotency_key)
        )


async def test_jobs_created_in_a_rolled_back_batch_leave_no_trace_in_memory(
    tmp_path: Path,
) -> None:
    """New jobs are saved into the projection in one step (`LogProjection.save`): a batch
    rolled back after creating them takes them back from the jobs, the ready heaps and
    the changes the next checkpoint writes."""
    path = tmp_path / "q.db"
    async with SqliteBackend(path) as backend:
        await backend.enqueue(CTX, _message())

        def breaks(tx: SqliteTransaction, now: object) -> None:
            raise RuntimeError("broken after the enqueues of its batch")

        results = await asyncio.gather(
            backend.enqueue(CTX, _message()),
            backend.enqueue_many(CTX, [_message(), _message()]),
            backend.writer.run(breaks),
            return_exceptions=True,
        )
        assert isinstance(results[2], RuntimeError)
        projection = backend.writer.projection
        logged = {(e.tenant_id, e.job_id) for e in await backend.read_events()}
        assert len(logged) == 4
        assert set(projection.jobs) <= logged and set(projection.changed) <= logged
        leases = await backend.dequeue_many(CTX, ["default"], 10)
        assert {("acme", lease.job_id) for lease in leases} == logged
        assert await backend.projected_jobs() == rebuild(await backend.read_events())
    report = await verify_log(SqliteLogReader(path))
    assert report.ok, report.problems
