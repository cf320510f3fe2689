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

#: Roughly the WAL pages between two checkpoints (SQLite's own default is 1,000), as
#: estimated by `note_commit`.
PAGES_PER_CHECKPOINT = 1_000
#: The pages any commit writes (its tables' and indexes' leaves, the counts, the
#: chain head), whatever it holds.
PAGES_PER_COMMIT = 8
#: Job writes (events appended, rows saved) per WAL page, roughly.
WRITES_PER_PAGE = 4


class ConnectionThread:
    """A connection of its own (opened on first use) on a thread of its own."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        """The connection (on the thread)."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _stop(self) -> None:
        """Close the connection on the thread, after what it runs, then stop the thread."""
        self._executor.submit(self._close_connection)
        self._executor.shutdown(wait=True)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class WalCheckpointer(ConnectionThread):
    """Runs a PASSIVE checkpoint once about `PAGES_PER_CHECKPOINT` pages were committed
    since the last one, one at a time, on its own thread and connection (opened on
    first use)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connect, "dogqueue-wal")
        self._pages = 0
        self._running: Future[None] | None = None
        self._closed = False
        #: Checkpoints run (for tests and benchmarks).
        self.checkpoints = 0

    def note_commit(self, writes: int) -> None:
        """Count a commit of `writes` job writes (from any thread); start a checkpoint
        if one is due and none runs."""
        with self._lock:
            self._pages += PAGES_PER_COMMIT + writes // WRITES_PER_PAGE
            if self._closed or self._pages < PAGES_PER_CHECKPOINT:
                return
            if self._running is not None and not self._running.done():
                return
            self._pages = 0
            self._running = self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError as error:
            if not is_busy(error):  # busy: another process is checkpointing
                raise
        self.checkpoints += 1

    def close(self) -> None:
        """Wait for a running checkpoint, then close the connection and the thread."""
        with self._lock:
            self._closed = True
        self._stop()
