"""A writer process that the crash tests kill with SIGKILL (see test_crash.py).

python -m properties.crash_child PATH mid-transaction
    commit a few jobs, then open a transaction, write job rows and events to the
    database file, and kill itself before COMMIT.
python -m properties.crash_child PATH busy
    enqueue, lease and complete jobs forever, printing each job id once committed.
python -m properties.crash_child PATH checkpointing
    enqueue batches large enough that the WAL checkpointer runs after every commit,
    forever, printing each job id once committed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime, timedelta

from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.checkpointer import PAGES_PER_CHECKPOINT, WRITES_PER_PAGE
from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.transaction import SqliteTransaction
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.validation import prepare_enqueue

COMMITTED = 5
#: Jobs per enqueue_many in "checkpointing": their pages alone make a checkpoint due.
CHECKPOINTED_BATCH = PAGES_PER_CHECKPOINT * WRITES_PER_PAGE // 2
ACME = QueueCtx("acme")


def message(job_type: str, n: int) -> JobMessage:
    return JobMessage(job_type=job_type, payload_bytes=b"{}", idempotency_key=f"{job_type}-{n}")


async def die_mid_transaction(backend: SqliteBackend) -> None:
    ids = await backend.enqueue_many(ACME, [message("kept", n) for n in range(COMMITTED)])
    await backend.dequeue(ACME, ["default"], lease_duration=timedelta(minutes=5))
    print(*ids, sep="\n", flush=True)
    engine = backend.engine
    batch = tuple(message("doomed", n) for n in range(500))
    enqueue = engine.enqueue_unit(prepare_enqueue(ACME, batch, engine.config))
    cancels = [engine.cancel_unit("acme", job_id) for job_id in ids]

    def doomed(tx: SqliteTransaction, now: datetime) -> None:
        # A tiny page cache spills the uncommitted pages into the WAL file.
        tx.conn.execute("PRAGMA cache_size = 2")
        enqueue.run(tx, now)
        for cancel in cancels:
            cancel.run(tx, now)
        # Put the buffered events into the database file too, then die before COMMIT.
        tx.conn.executemany(Q["insert_event"], tx._events)
        assert os.path.getsize(backend.path + "-wal") > 0
        os.kill(os.getpid(), signal.SIGKILL)

    # On the writer itself (the raw transaction, not a unit's strict view of it).
    await backend.writer.run(doomed)


async def stay_busy(backend: SqliteBackend) -> None:
    n = 0
    while True:
        job_id = await backend.enqueue(ACME, message("busy", n))
        lease = await backend.dequeue(ACME, ["default"])
        if lease is not None:
            await backend.ack_complete(ACME, lease, b"done")
        print(job_id, flush=True)
        n += 1


async def keep_checkpointing(backend: SqliteBackend) -> None:
    n = 0
    while True:
        batch = [message("big", n + i) for i in range(CHECKPOINTED_BATCH)]
        ids = await backend.enqueue_many(ACME, batch)
        print(*ids, sep="\n", flush=True)
        n += CHECKPOINTED_BATCH


async def main(path: str, mode: str) -> None:
    modes = {
        "mid-transaction": die_mid_transaction,
        "busy": stay_busy,
        "checkpointing": keep_checkpointing,
    }
    async with SqliteBackend(path) as backend:
        await modes[mode](backend)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
