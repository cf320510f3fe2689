"""Replay: rebuild every projection from the log and compare it with the live one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dogqueue.audit.logfile import LogFile
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey

#: Called with the number of events folded so far.
Progress = Callable[[int], None]
#: Events folded between two progress calls.
PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of a replay: how much, how fast, and how the live projection differs."""

    events: int
    jobs: int
    seconds: float
    #: Jobs whose live state differs from the replayed one (or exists on one side only).
    differing: tuple[JobKey, ...]

    @property
    def events_per_second(self) -> float:
        """Replay speed."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def replay(log: LogFile, progress: Progress | None = None) -> ReplayResult:
    """Fold the whole log in memory and compare the result with the stored projection."""
    started = time.perf_counter()
    jobs: dict[JobKey, JobInfo] = {}
    count = 0
    with log.snapshot():
        for event in log.events():
            key = (event.tenant_id, event.job_id)
            jobs[key] = evolve(jobs.get(key), event)
            count += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count)
        seconds = time.perf_counter() - started
        live = {(job.tenant_id, job.job_id): job for job in log.jobs()}
    if progress is not None:
        progress(count)
    differing = sorted(key for key in jobs.keys() | live.keys() if jobs.get(key) != live.get(key))
    return ReplayResult(events=count, jobs=len(jobs), seconds=seconds, differing=tuple(differing))
