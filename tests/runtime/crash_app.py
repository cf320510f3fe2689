"""The application the crash test's worker processes run (`tests.runtime.crash_app:make_adapter`).

Each execution appends one line to a per-process file, so the test can count executions
even of processes it killed."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import timedelta
from pathlib import Path

from dogqueue import Backend, Job, QueueAdapter, QueueConfig

#: Short leases and a brisk reaper, so the jobs of killed workers come back quickly.
CRASH_CONFIG = QueueConfig(
    default_lease_duration=timedelta(seconds=5),
    reaper_interval=timedelta(milliseconds=500),
    base_retry_backoff=timedelta(milliseconds=10),
    max_retry_backoff=timedelta(milliseconds=100),
)


#: The longest a job runs (DOGQUEUE_CRASH_JOB_SECONDS): long enough that kills find work.
JOB_SECONDS = float(os.environ.get("DOGQUEUE_CRASH_JOB_SECONDS", "0.02"))


class ExecutionLog:
    """Appends one line per execution to this process's file in DOGQUEUE_CRASH_LOG_DIR."""

    def __init__(self, directory: Path) -> None:
        self._file = (directory / f"{os.getpid()}.log").open("a", buffering=1)

    def record(self, key: str) -> None:
        self._file.write(key + "\n")


class CrashWork(Job[ExecutionLog, None]):
    """A short piece of work identified by `key`."""

    JOB_TYPE = "crash-work"
    MAX_RETRIES = 100  # kills count as failed attempts; never run out of them here
    key: str

    async def execute(self, ctx: ExecutionLog) -> None:
        ctx.record(self.key)
        await asyncio.sleep(random.uniform(0.001, JOB_SECONDS))


async def make_adapter(backend: Backend) -> tuple[QueueAdapter[ExecutionLog], ExecutionLog]:
    """The adapter and context of one worker process."""
    backend.config = CRASH_CONFIG  # quick retries after a kill (the backend decides them)
    adapter: QueueAdapter[ExecutionLog] = QueueAdapter(backend)
    await adapter.register_job(CrashWork)
    return adapter, ExecutionLog(Path(os.environ["DOGQUEUE_CRASH_LOG_DIR"]))
