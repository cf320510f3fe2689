"""Another writer's events, as a writing process folds them (`LogProjection._fold_rows`,
which does the work of `save` without undo or keys, in one frame): the projection it
leaves must be the one the general path leaves (each event saved through `save`), in
every state, index and checkpoint change a decision or a checkpoint reads, whatever
the events (parents, schedules, retries, heartbeats, releases, cancels, requeues,
expiries, controls) and however the log is cut into catch-ups."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from dogqueue import FakeClock, JobMessage, JobPriority, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.connection import connect
from dogqueue.backend.sqlite.projection import LogProjection
from dogqueue.backend.sqlite.queries import Q
from dogqueue.controls import pause_queue
from dogqueue.core.events import Enqueued, is_control
from dogqueue.core.evolve import evolve
from dogqueue.log.stored import stored_event

ACME = QueueCtx("acme")
OTHER = QueueCtx("other")
QUEUES = ("default", "mail", "slow")


def message(queue: str = "default", **fields: object) -> JobMessage:
    return JobMessage(job_type="t", payload_bytes=b"{}", queue=queue, **fields)  # type: ignore[arg-type]


def fold_through_save(projection: LogProjection, conn: sqlite3.Connection) -> None:
    """The general path: every event after `position` saved through `save`."""
    rows = conn.execute(Q["read_events"], (projection.position, -1)).fetchall()
    for seq, data in rows:
        event = stored_event(data, seq)
        if is_control(event):
            continue
        key = (event.tenant_id, event.job_id)
        before = projection.jobs.get(key)
        if before is None and not isinstance(event, Enqueued):
            before = projection._before(conn, key, event.version, seq)
            if before is None:
                continue
        projection.save(before, evolve(before, event))
    if rows:
        projection.position = int(rows[-1][0])
        projection._evict()


def decisions(projection: LogProjection, clock: FakeClock) -> object:
    """What units would read from `projection` now and later: the next ready job of
    each tenant and queue set, the earliest run_at, expired leases, dependents."""
    seen: list[object] = []
    for later in (timedelta(0), timedelta(minutes=2), timedelta(hours=2)):
        now = clock() + later
        for tenant in ("acme", "other"):
            for queues in (("default",), ("mail", "slow"), QUEUES):
                job = projection.next_ready(tenant, queues, now)
                seen.append(None if job is None else (job.job_id, job.version))
            seen.append(projection.next_run_at(QUEUES, (tenant,)))
            seen.append([(j.job_id, j.version) for j in projection.expired_leases(tenant, now)])
    seen.append({key: projection.dependents(*key) for key in sorted(projection.jobs)})
    return seen


def state(projection: LogProjection) -> object:
    return (
        projection.position,
        projection.jobs,
        projection.ended_at,
        projection.changed,
        projection.base_status,
    )


async def test_another_writers_events_fold_as_if_each_were_saved(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    clock = FakeClock()
    conn = connect(str(path), "NORMAL")
    fast, general = LogProjection(), LogProjection()

    def look() -> None:
        """Both projections fold what was appended since they last looked (one
        catch-up each, in one read snapshot), and must agree."""
        conn.execute("BEGIN")
        try:
            for projection in (fast, general):
                if not projection.loaded:
                    projection.load_checkpoint(conn)
            fast.catch_up(conn)
            fold_through_save(general, conn)
            assert state(fast) == state(general)
            assert decisions(fast, clock) == decisions(general, clock)
            assert state(fast) == state(general)  # the reads dropped the same entries
        finally:
            conn.execute("COMMIT")

    async with SqliteBackend(path, clock=clock) as backend:
        backend.writer.projection_checkpointer = None  # the log's tail stays in memory
        look()
        parents = await backend.enqueue_many(ACME, [message(), message("mail")])
        later = clock() + timedelta(minutes=1)
        await backend.enqueue_many(
            ACME,
            [
                message(after=(parents[0],)),
                message(after=tuple(parents), on_parent_failure="run"),
                message("slow", run_at=later, priority=JobPriority.HIGH),
                message("mail", idempotency_key="once"),
            ],
        )
        await backend.enqueue_many(OTHER, [message(), message("mail")])
        look()
        # Leases, a heartbeat, a completion (a child becomes ready), a failure that
        # retries later, a final one (its dependents hear of it), a release.
        leases = await backend.dequeue_many(ACME, QUEUES, 2)
        await backend.heartbeat(ACME, leases[0], lease_duration=timedelta(minutes=5))
        await backend.ack_complete(ACME, leases[0], b"done")
        look()
        await backend.ack_fail(ACME, leases[1], "boom", retry=False)
        other = await backend.dequeue_many(OTHER, QUEUES, 2)
        await backend.ack_fail(OTHER, other[0], "again")
        await backend.release(OTHER, other[1])
        await pause_queue(backend, ACME, "mail")
        look()
        # A cancel, a requeue of a failed job, a lease left to expire and reaped.
        clock.advance(timedelta(minutes=2))
        ready = await backend.dequeue_many(ACME, QUEUES, 3)
        await backend.cancel_job(ACME, ready[0].job_id)
        await backend.retry_job(ACME, leases[1].job_id)
        clock.advance(timedelta(hours=1))
        assert await backend.reap_expired() >= 1
        look()
        # Everything at once: a whole lifecycle inside one catch-up.
        await backend.enqueue_many(OTHER, [message("slow") for _ in range(3)])
        for lease in await backend.dequeue_many(OTHER, ("slow",), 3):
            await backend.ack_complete(OTHER, lease)
        look()
    conn.close()
    assert fast.changed and fast.ended_at  # the test saw jobs change and end
