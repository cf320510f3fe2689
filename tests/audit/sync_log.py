"""Reading a SQLite log from synchronous tests: `SqliteLogReader`'s calls, each run to
completion on a private event loop (so they also work inside an async test)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from dogqueue.audit.checkpoint import Checkpoint
from dogqueue.audit.verify import Report, all_records, verify_archive, verify_log
from dogqueue.backend.sqlite.log import SqliteLogReader
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.log.archive import Anchor
from dogqueue.log.reader import LogRecord

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a fresh event loop in another thread; return its result."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class SyncLog:
    """A log file read through `SqliteLogReader`, synchronously."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.reader = SqliteLogReader(path)

    def __enter__(self) -> SyncLog:
        return self

    def __exit__(self, *exc: object) -> None:
        run_sync(self.reader.close())

    def records(self) -> list[LogRecord]:
        async def read() -> list[LogRecord]:
            return [record async for record in all_records(self.reader)]

        return run_sync(read())

    def history(self, tenant_id: str, job_id: str) -> list[AnyEvent]:
        return run_sync(self.reader.history(tenant_id, job_id))

    def jobs(self, tenant_id: str | None = None) -> list[JobInfo]:
        return run_sync(self.reader.jobs(tenant_id))

    def anchors(self) -> list[Anchor]:
        return run_sync(self.reader.anchors())

    def event_count(self) -> int:
        return len(self.records())

    def verify(
        self, checkpoint: Checkpoint | None = None, archives: Sequence[SyncLog] = ()
    ) -> Report:
        readers = [archive.reader for archive in archives]
        return run_sync(verify_log(self.reader, checkpoint=checkpoint, archives=readers))

    def verify_archive(self, live: SyncLog | None = None) -> Report:
        return run_sync(verify_archive(self.reader, None if live is None else live.reader))
