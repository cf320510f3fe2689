"""A process killed with SIGKILL by test_sqlite_checkpoint_crash.py, in one of two places.

`python checkpoint_crash_worker.py DB after-append N`: enqueue N jobs, lease and settle
some, with the background checkpoint turned off, print "appended" and wait to be killed
(every event committed, none checkpointed).

`python checkpoint_crash_worker.py DB mid-checkpoint N`: the same, then start a
checkpoint catch-up; once it has written its first job row (inside its transaction),
print "checkpointing" and wait there to be killed.
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


async def _write(path: str, jobs: int) -> None:
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
    # Not closed: a close would write the checkpoint.


def _hang_mid_checkpoint(path: str) -> None:
    conn = connect(path, "NORMAL")
    forever = threading.Event()

    def trace(statement: str) -> None:
        if statement.startswith("INSERT INTO jobs"):
            print("checkpointing", flush=True)
            forever.wait()

    conn.set_trace_callback(trace)
    catchup.catch_up_page(conn, limit=1_000_000)
    raise SystemExit("the catch-up finished: it should have been killed in its middle")


def main() -> None:
    path, mode, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    catchup.CHECKPOINT_EVERY_EVENTS = 10**9  # only this script's own catch-up writes one
    catchup.CHECKPOINT_EVERY_SECONDS = 10.0**9
    asyncio.run(_write(path, jobs))
    if mode == "after-append":
        print("appended", flush=True)
        threading.Event().wait()
    elif mode == "mid-checkpoint":
        _hang_mid_checkpoint(path)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    try:
        main()
    except sqlite3.Error as error:
        raise SystemExit(f"sqlite error: {error}") from error
