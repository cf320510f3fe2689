"""Replay: rebuild every projection from the log and compare it with the live one, on
any backend's log (read-only: fixing the projection is the backend's
`rebuild_projections`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dogqueue.core.events import is_control
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.log.reader import LogReader

#: Called with the number of events folded so far.
Progress = Callable[[int], None]
#: Events read, folded and reported per step.
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


async def replay(log: LogReader, progress: Progress | None = None) -> ReplayResult:
    """Fold the whole log in memory and compare the result with the stored projection."""
    started = time.perf_counter()
    jobs: dict[JobKey, JobInfo] = {}
    count = after = 0
    async with log.snapshot():
        while events := await log.events(after=after, limit=PROGRESS_EVERY):
            for event in events:
                if is_control(event):
                    continue
                key = (event.tenant_id, event.job_id)
                jobs[key] = evolve(jobs.get(key), event)
            count += len(events)
            after = events[-1].seq
            if progress is not None:
                progress(count)
        seconds = time.perf_counter() - started
        live = {(job.tenant_id, job.job_id): job for job in await log.jobs()}
    if progress is not None:
        progress(count)
    differing = sorted(key for key in jobs.keys() | live.keys() if jobs.get(key) != live.get(key))
    return ReplayResult(events=count, jobs=len(jobs), seconds=seconds, differing=tuple(differing))
