"""The loop watchdog: a thread that warns when job code blocks the event loop.

It measures real time on purpose (a blocked loop cannot measure itself). A simulation on
a virtual-time loop switches it off with `blocked_loop_warning=None`."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from types import FrameType

from dogqueue.jobs import BaseJob
from dogqueue.worker.running import RunningJobs

log = logging.getLogger("dogqueue.worker")


class LoopWatchdog:
    """Warns when the worker's event loop is blocked longer than a threshold, naming the
    job whose code blocks it. A thread watches a timestamp the loop refreshes."""

    def __init__(self, jobs: RunningJobs, threshold: float) -> None:
        self._jobs = jobs
        self._threshold = threshold
        self._beat = time.monotonic()
        self._done = threading.Event()
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(
            target=self._watch, name="dogqueue-loop-watchdog", daemon=True
        )

    async def beat_forever(self) -> None:
        """Refresh the timestamp while the loop runs freely."""
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self._threshold / 4)

    def start(self) -> None:
        """Start watching (from the loop's thread)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; the thread ends within a quarter of the threshold."""
        self._done.set()

    def _watch(self) -> None:
        warned_for = -1.0
        while not self._done.wait(self._threshold / 4):
            beat = self._beat
            blocked = time.monotonic() - beat
            if blocked > self._threshold and beat != warned_for:
                warned_for = beat
                log.warning(
                    "event loop blocked for over %.1fs by job %s; use a SyncJob (def execute)"
                    " or await instead of blocking",
                    blocked,
                    self._blocking_job(),
                )

    def _blocking_job(self) -> str:
        """The job whose `execute` is on the loop thread's stack (or the running ones)."""
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, BaseJob):
                job_type = getattr(type(candidate), "JOB_TYPE", type(candidate).__name__)
                labels = [
                    job.label
                    for job in list(self._jobs.values())
                    if job.lease.message.job_type == job_type
                ]
                return " or ".join(labels) or job_type
            frame = frame.f_back
        labels = [job.label for job in list(self._jobs.values())]
        return ", ".join(labels) or "(none running)"
