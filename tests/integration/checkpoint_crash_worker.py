"""A process killed with SIGKILL by test_sqlite_checkpoint_crash.py, in one of two places.

`python checkpoint_crash_worker.py DB after-append N`: enqueue N jobs, lease and settle
some, with the background checkpoint turned off, print "appended" and wait to be killed
(every event committed, none checkpointed).

`python checkpoint_crash_worker.py DB mid-checkpoint N`: the same, then start a
checkpoint catch-up (the fold of the log's tail); once it has written its first job row
(inside its transaction), print "checkpointing" and wait there to be killed.

`python checkpoint_crash_worker.py DB mid-memory-checkpoint N`: the same with the
checkpoint written from the writer's memory (`write_changes`), as the backend does.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading

from dogqueue import Completion, Failure, JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend, catchup
from dogqueue.backend.sqlite.connection import connect

CTX = QueueCtx("acme")


async def _write(path: str, jobs: int) -> SqliteBackend:
    backend = SqliteBackend(path)
    await backend.open()
    await backend.enqueue_many(
        CTX, [JobMessage(job_type="t", payload_bytes=b"{}", max_retries=0) for _ in range(jobs)]
    )
    leases = await backend.dequeue_many(CTX, ["default"], jobs // 2)
    settled = [
        Completion(lease=lease) if i % 3 else Failure(lease=lease, error="boom", retry=False)
        for i, lease in enumerate(leases[: len(leases) // 2])
    ]
    await backend.settle_many(CTX, settled)
    return backend  # not closed: a close would write the checkpoint


def _hanging(path: str) -> sqlite3.Connection:
    """A connection that stops for good once it has written its first job row."""
    conn = connect(path, "NORMAL")
    forever = threading.Event()

    def trace(statement: str) -> None:
        if statement.startswith("INSERT INTO jobs"):
            print("checkpointing", flush=True)
            forever.wait()

    conn.set_trace_callback(trace)
    return conn


def main() -> None:
    path, mode, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    catchup.CHECKPOINT_EVERY_EVENTS = 10**9  # only this script's own catch-up writes one
    catchup.CHECKPOINT_EVERY_SECONDS = 10.0**9
    backend = asyncio.run(_write(path, jobs))
    if mode == "after-append":
        print("appended", flush=True)
        threading.Event().wait()
    elif mode == "mid-checkpoint":
        catchup.catch_up_page(_hanging(path), limit=1_000_000)
    elif mode == "mid-memory-checkpoint":
        changes = backend.writer.projection.take_changes()
        assert changes is not None and changes.base == 0
        catchup.write_changes(_hanging(path), changes)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    raise SystemExit("the checkpoint was written: it should have been killed in its middle")


if __name__ == "__main__":
    try:
        main()
    except sqlite3.Error as error:
        raise SystemExit(f"sqlite error: {error}") from error
