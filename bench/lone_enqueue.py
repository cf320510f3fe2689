"""Where one caller's enqueue spends its time on SQLite (NORMAL), hop by hop, beside
two floors measured on the same disk in the same run.

- bare: a plain sqlite3 `BEGIN IMMEDIATE; INSERT; COMMIT` of one 200-byte row (the
  commit's own cost: the floor of any durable enqueue);
- dogqueue's SQL: the statements a lone enqueue's transaction runs (BEGIN IMMEDIATE,
  `PRAGMA data_version`, the event's INSERT, COMMIT; the chain heads are folded every
  `FOLD_EVERY` events, not at each commit), with no
  Python around them;
- then `SqliteBackend.enqueue` itself, split into: the call up to the writer's submit
  (`commit_now` for a lone caller since the eighth round: no future) (input checks, the
  unit), submit to the start of the transaction (the group commit's checks; for a lone
  caller no turn of the event loop since the sixth round), the
  transaction (run on the loop, within the call: see `dogqueue/backend/sqlite/writer.py`),
  and the commit back to the caller.

Medians (µs) of sequential calls after a warm-up:

    python bench/lone_enqueue.py --calls 3000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dogqueue import JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.queries import Q
from dogqueue.backend.sqlite.writer import GroupCommitWriter

CTX = QueueCtx("tenant-1")
MESSAGE = JobMessage(job_type="send_email", payload_bytes=b'{"user_id": 12345}')
WARM_UP = 200
HOPS = ("call to submit", "submit to transaction", "transaction", "commit to caller")


def median_us(fn: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1e6


def bare_commit_us(path: Path, calls: int) -> float:
    """Median µs of one plain INSERT + COMMIT in WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
    row = (os.urandom(200),)

    def commit() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (data) VALUES (?)", row)
        conn.execute("COMMIT")

    try:
        return median_us(commit, calls)
    finally:
        conn.close()


def statements_us(conn: sqlite3.Connection, calls: int) -> float:
    """Median µs of a lone enqueue's statements on dogqueue's schema, no Python logic."""
    seq = int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    data, digest = os.urandom(180), os.urandom(32)

    def transaction() -> None:
        nonlocal seq
        seq += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(Q["data_version"]).fetchone()
        event = (seq, CTX.tenant_id, f"job-{seq}", 1, "enqueued", data, digest, seq, None)
        conn.execute(Q["insert_event"], event)
        conn.execute("COMMIT")

    return median_us(transaction, calls)


@contextmanager
def stamped(marks: dict[str, float]) -> Iterator[None]:
    """Stamp the writer's submit (or `commit_now`, a lone caller's way in since the
    eighth round) and the transaction's start and end into `marks`."""
    submit, transaction = GroupCommitWriter.submit, GroupCommitWriter._transaction
    commit_now = GroupCommitWriter.commit_now

    def stamped_submit(self: GroupCommitWriter, *args: Any, **kwargs: Any) -> Any:
        marks["submit"] = time.perf_counter()
        return submit(self, *args, **kwargs)

    def stamped_commit_now(self: GroupCommitWriter, *args: Any, **kwargs: Any) -> Any:
        marks["submit"] = time.perf_counter()
        return commit_now(self, *args, **kwargs)

    def stamped_transaction(self: GroupCommitWriter, works: Any) -> Any:
        marks["begin"] = time.perf_counter()
        try:
            return transaction(self, works)
        finally:
            marks["end"] = time.perf_counter()

    GroupCommitWriter.submit = stamped_submit  # type: ignore[method-assign]
    GroupCommitWriter.commit_now = stamped_commit_now  # type: ignore[method-assign]
    GroupCommitWriter._transaction = stamped_transaction  # type: ignore[method-assign]
    try:
        yield
    finally:
        GroupCommitWriter.submit = submit  # type: ignore[method-assign]
        GroupCommitWriter.commit_now = commit_now  # type: ignore[method-assign]
        GroupCommitWriter._transaction = transaction  # type: ignore[method-assign]


async def enqueue_hops_us(path: Path, calls: int) -> dict[str, float]:
    """Median µs of each hop of `SqliteBackend.enqueue` and of the whole call; then of
    the same statements with no Python, on the same file once the backend is closed."""
    async with SqliteBackend(path) as backend:
        for _ in range(WARM_UP):
            await backend.enqueue(CTX, MESSAGE)
        marks: dict[str, float] = {}
        rows: list[tuple[float, ...]] = []
        with stamped(marks):
            for _ in range(calls):
                began = time.perf_counter()
                await backend.enqueue(CTX, MESSAGE)
                ended = time.perf_counter()
                rows.append(
                    (
                        marks["submit"] - began,
                        marks["begin"] - marks["submit"],
                        marks["end"] - marks["begin"],
                        ended - marks["end"],
                        ended - began,
                    )
                )
    figures = {
        name: statistics.median(row[i] for row in rows) * 1e6
        for i, name in enumerate((*HOPS, "enqueue"))
    }
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        figures["statements"] = statements_us(conn, calls)
    finally:
        conn.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            bare = bare_commit_us(Path(folder) / "bare.db", args.calls)
            hops = asyncio.run(enqueue_hops_us(Path(folder) / "queue.db", args.calls))
        steps = "; ".join(f"{name} {hops[name]:.1f}" for name in HOPS)
        print(
            f"run {run + 1}: bare INSERT+COMMIT {bare:.1f} µs; dogqueue's SQL"
            f" {hops['statements']:.1f} µs; enqueue {hops['enqueue']:.1f} µs = {steps}"
        )


if __name__ == "__main__":
    main()
