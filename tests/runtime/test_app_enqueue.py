"""Enqueue from code without an event loop, and inside the application's own SQLite
transaction (real database files)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from dogqueue import JobAlreadyExists, JobNotFound, JobStatus, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.client.blocking import BlockingQueue
from tests.runtime.helpers import ALL_JOBS, Echo, Probe, within

T = QueueCtx("shop")


async def make_adapter(backend: SqliteBackend) -> QueueAdapter[Probe]:
    adapter: QueueAdapter[Probe] = QueueAdapter(backend)
    for job_class in ALL_JOBS:
        await adapter.register_job(job_class)
    return adapter


async def prepared(db: Path) -> None:
    """Create the queue tables, as the application's first SqliteBackend does."""
    async with SqliteBackend(db):
        pass


def application_connection(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)")
    conn.commit()
    return conn


async def test_a_job_enqueued_in_a_committed_transaction_exists_and_runs(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    await prepared(db)
    async with SqliteBackend(db) as backend:
        adapter = await make_adapter(backend)
        conn = application_connection(db)
        conn.execute("INSERT INTO orders (item) VALUES ('tea')")  # opens the transaction
        handle = await adapter.enqueue_in_transaction(conn, T, Echo(text="order placed"))
        assert conn.in_transaction
        with pytest.raises(JobNotFound):  # not visible before the commit
            await backend.get_job(T, handle)
        conn.commit()
        async with Worker(adapter, context=Probe(), handle_signals=False):
            assert await within_result(adapter.wait_result(T, handle)) == "ORDER PLACED"
        assert conn.execute("SELECT item FROM orders").fetchall() == [("tea",)]
        conn.close()


async def test_a_rolled_back_transaction_leaves_no_job_and_no_event(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    await prepared(db)
    async with SqliteBackend(db) as backend:
        adapter = await make_adapter(backend)
        before = await backend.read_events()
        conn = application_connection(db)
        conn.execute("INSERT INTO orders (item) VALUES ('coffee')")
        handle = await adapter.enqueue_in_transaction(
            conn, T, Echo(text="never"), idempotency_key="order-1"
        )
        conn.rollback()
        assert await backend.projected_jobs() == {}
        assert await backend.read_events() == before
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        # The log goes on as if nothing happened: the same key is free again.
        again = await adapter.enqueue_in_transaction(
            conn, T, Echo(text="now"), idempotency_key="order-1"
        )
        conn.commit()
        assert again != handle
        assert [e.type for e in await backend.read_events()] == ["enqueued"]
        # A refused enqueue leaves the application's own writes alone.
        conn.execute("INSERT INTO orders (item) VALUES ('cake')")
        with pytest.raises(JobAlreadyExists):
            await adapter.enqueue_in_transaction(
                conn, T, Echo(text="dup"), idempotency_key="order-1"
            )
        conn.commit()
        assert conn.execute("SELECT item FROM orders").fetchall() == [("cake",)]
        assert len(await backend.projected_jobs()) == 1
        conn.close()


async def test_blocking_enqueue_from_a_thread_with_no_event_loop(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    results: list[str] = []
    errors: list[BaseException] = []

    async def make() -> QueueAdapter[Probe]:
        return await make_adapter(SqliteBackend(db))

    def serve_requests(queue: BlockingQueue[Probe], name: str) -> None:
        # e.g. Django views, each thread without an event loop, sharing one queue
        try:
            with pytest.raises(RuntimeError):
                asyncio.get_running_loop()
            for n in range(3):
                handle = queue.enqueue(T, Echo(text=f"{name} {n}"))
                results.append(queue.wait_result(T, handle, timeout=20))
        except BaseException as error:
            errors.append(error)

    async with SqliteBackend(db) as backend:
        adapter = await make_adapter(backend)
        async with Worker(adapter, context=Probe(), handle_signals=False):

            def web_process() -> None:
                with BlockingQueue(make) as queue:
                    threads = [
                        threading.Thread(target=serve_requests, args=(queue, f"view{i}"))
                        for i in range(4)
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()

            await within(asyncio.to_thread(web_process))
        assert not errors, errors
        assert sorted(results) == sorted(f"VIEW{i} {n}" for i in range(4) for n in range(3))
        jobs = await backend.projected_jobs()
        assert {job.status for job in jobs.values()} == {JobStatus.COMPLETED}


async def within_result(awaitable: object) -> object:
    return await asyncio.wait_for(awaitable, 20)  # type: ignore[arg-type]


async def test_blocking_workflows_from_a_thread_with_no_event_loop(tmp_path: Path) -> None:
    """A chain, a chord and a whole-workflow cancel from synchronous code."""
    db = tmp_path / "app.db"
    await prepared(db)

    async def make() -> QueueAdapter[Probe]:
        return await make_adapter(SqliteBackend(db))

    def web_process() -> tuple[list[str], list[str], list[str]]:
        with BlockingQueue(make) as queue:
            chain = queue.enqueue_chain(T, [Echo(text="a"), Echo(text="b")])
            parts, then = queue.enqueue_chord(T, [Echo(text="c"), Echo(text="d")], Echo(text="e"))
            group = queue.enqueue_group(T, [Echo(text="f")], after=[then])
            canceled = queue.cancel_workflow(T, parts[0])
            return list(chain), [*parts, then, *group], canceled

    chain, chord, canceled = await asyncio.wait_for(asyncio.to_thread(web_process), 20)
    async with SqliteBackend(db) as backend:
        statuses = {
            job_id: (await backend.get_job(T, job_id)).status for job_id in [*chain, *chord]
        }
    assert statuses[chain[0]] is JobStatus.ENQUEUED and statuses[chain[1]] is JobStatus.WAITING
    c, d, e, f = chord
    assert sorted(canceled) == sorted([c, e, f])  # the part, its fan-in and what ran after it
    assert statuses[d] is JobStatus.ENQUEUED
    assert {statuses[c], statuses[e], statuses[f]} == {JobStatus.CANCELED}
