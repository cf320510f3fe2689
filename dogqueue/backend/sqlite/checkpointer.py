"""WAL checkpoints off the writer's path: a thread of their own, on a connection of its
own, copies committed pages from the WAL into the database file while the writer keeps
appending (SQLite allows one checkpointer beside one writer). With
synchronous=NORMAL these checkpoints are the only fsyncs, so no commit waits for one;
the writer's connection never checkpoints (`PRAGMA wal_autocheckpoint = 0`)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from dogqueue.backend.sqlite.connection import is_busy

#: Commits between two checkpoints: about SQLite's own 1,000 pages at a few dozen
#: pages per group commit.
COMMITS_PER_CHECKPOINT = 64


class WalCheckpointer:
    """Runs a PASSIVE checkpoint every `COMMITS_PER_CHECKPOINT` commits noted, one at a
    time, on its own thread and connection (opened on first use)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dogqueue-wal")
        self._lock = threading.Lock()
        self._commits = 0
        self._running: Future[None] | None = None
        self._closed = False
        #: Checkpoints run (for tests and benchmarks).
        self.checkpoints = 0

    def note_commit(self) -> None:
        """Count a commit (from any thread); start a checkpoint if one is due and none runs."""
        with self._lock:
            self._commits += 1
            if self._closed or self._commits < COMMITS_PER_CHECKPOINT:
                return
            if self._running is not None and not self._running.done():
                return
            self._commits = 0
            self._running = self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError as error:
            if not is_busy(error):  # busy: another process is checkpointing
                raise
        self.checkpoints += 1

    def close(self) -> None:
        """Wait for a running checkpoint, then close the connection and the thread."""
        with self._lock:
            self._closed = True
        self._executor.submit(self._close_connection)
        self._executor.shutdown(wait=True)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
