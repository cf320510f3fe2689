"""Queue metrics as a pure fold of the event log.

`MetricsFold.apply(event)` folds events in log order; `MetricsFold.snapshot(now)` reads
the numbers at one moment. Nothing here does I/O or reads a clock, so the same log and
the same `now` always give the same snapshot, in any process, before or after a restart.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

import msgspec

from dogqueue.core.errors import InvalidTransition
from dogqueue.core.events import AnyEvent, Enqueued, Expired
from dogqueue.core.evolve import evolve
from dogqueue.core.job import JobInfo
from dogqueue.core.message import JobMessage
from dogqueue.core.order import is_ready, ready_since
from dogqueue.core.status import JobStatus
from dogqueue.observability.outcome import Outcome

#: Upper bounds (seconds) of the histogram buckets for execution time and start latency.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)


class SeriesKey(NamedTuple):
    """Who a group of numbers belongs to: tenant, queue and job type."""

    tenant_id: str
    queue: str
    job_type: str


@dataclass(slots=True)
class Histogram:
    """Observations of a duration in the fixed `DURATION_BUCKETS` (+Inf last)."""

    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    count: int = 0
    total: timedelta = timedelta(0)

    def observe(self, duration: timedelta) -> None:
        """Count one observation."""
        seconds = max(duration, timedelta(0)).total_seconds()
        self.bucket_counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += max(duration, timedelta(0))

    def merge(self, other: Histogram) -> None:
        """Add `other`'s observations to this one."""
        for index, value in enumerate(other.bucket_counts):
            self.bucket_counts[index] += value
        self.count += other.count
        self.total += other.total

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it) pairs, ending with +Inf."""
        bounds = [repr(bound) for bound in DURATION_BUCKETS] + ["+Inf"]
        pairs: list[tuple[str, int]] = []
        running = 0
        for bound, value in zip(bounds, self.bucket_counts, strict=True):
            running += value
            pairs.append((bound, running))
        return pairs

    def copy(self) -> Histogram:
        """An independent copy."""
        return Histogram(list(self.bucket_counts), self.count, self.total)


@dataclass(slots=True)
class SeriesCounters:
    """Running totals of one series, from the start of the log."""

    #: Jobs enqueued.
    enqueued: int = 0
    #: Leases taken (attempts started; released ones included).
    attempts: int = 0
    #: Attempts that completed.
    completed: int = 0
    #: Attempts that failed or whose lease expired.
    failed_attempts: int = 0
    #: Failed attempts after which a retry was scheduled.
    retries: int = 0
    #: Jobs that failed for good (dead letters).
    dead: int = 0
    canceled: int = 0
    released: int = 0
    #: Failed or canceled jobs an operator put back in the queue.
    requeued: int = 0
    #: Execution time of finished attempts, by outcome.
    execution: dict[Outcome, Histogram] = field(default_factory=dict)
    #: Time from when a job was due (enqueued, scheduled or retry time) to its lease.
    start_latency: Histogram = field(default_factory=Histogram)

    def merge(self, other: SeriesCounters) -> None:
        """Add `other`'s totals to these."""
        self.enqueued += other.enqueued
        self.attempts += other.attempts
        self.completed += other.completed
        self.failed_attempts += other.failed_attempts
        self.retries += other.retries
        self.dead += other.dead
        self.canceled += other.canceled
        self.released += other.released
        self.requeued += other.requeued
        for outcome, histogram in other.execution.items():
            self.execution.setdefault(outcome, Histogram()).merge(histogram)
        self.start_latency.merge(other.start_latency)

    def copy(self) -> SeriesCounters:
        """An independent copy."""
        result = SeriesCounters()
        result.merge(self)
        return result


@dataclass(slots=True)
class _JobTrack:
    series: SeriesKey
    counters: SeriesCounters
    #: The job's state as `evolve` folds it (without its payload, which no metric uses).
    state: JobInfo
    lease_started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SeriesMetrics:
    """The numbers of one (tenant, queue, job type) at one moment."""

    key: SeriesKey
    counters: SeriesCounters
    #: Current job count per status.
    by_status: dict[JobStatus, int]
    #: ENQUEUED jobs whose run_at has come.
    ready: int
    #: ENQUEUED jobs whose run_at is still ahead.
    scheduled: int
    #: Age of the longest-waiting ready job (since it became due), or None.
    oldest_ready_age: timedelta | None

    @property
    def leased(self) -> int:
        """Jobs now held under a lease."""
        return self.by_status.get(JobStatus.LEASED, 0)


class MetricsSnapshot:
    """Queue metrics folded from the log at one moment (`at`).

    Every getter takes optional `job_type` / `queue` filters and sums over the series
    that match; when the snapshot was taken for one tenant it holds only that tenant.
    """

    def __init__(
        self, at: datetime, series: Iterable[SeriesMetrics], unsealed_events: int = 0
    ) -> None:
        self.at = at
        self.series: tuple[SeriesMetrics, ...] = tuple(sorted(series, key=lambda s: s.key))
        #: Committed events the log has not given a position yet (PostgreSQL's sequencer
        #: tail; always 0 on SQLite and memory). Folded metrics cannot include them yet.
        self.unsealed_events = unsealed_events

    def _select(self, job_type: str | None, queue: str | None) -> Iterator[SeriesMetrics]:
        for item in self.series:
            if job_type is not None and item.key.job_type != job_type:
                continue
            if queue is not None and item.key.queue != queue:
                continue
            yield item

    def _total(self, job_type: str | None, queue: str | None) -> SeriesCounters:
        total = SeriesCounters()
        for item in self._select(job_type, queue):
            total.merge(item.counters)
        return total

    @property
    def job_types(self) -> list[str]:
        """Job types known to the log, sorted."""
        return sorted({item.key.job_type for item in self.series})

    @property
    def queues(self) -> list[str]:
        """Queues known to the log, sorted."""
        return sorted({item.key.queue for item in self.series})

    def get_job_count(
        self,
        job_type: str | None = None,
        status: JobStatus | None = None,
        *,
        queue: str | None = None,
    ) -> int:
        """Jobs of that type known to the log, or only those now in `status`."""
        if status is not None:
            status = JobStatus(status)
        return sum(
            sum(item.by_status.values()) if status is None else item.by_status.get(status, 0)
            for item in self._select(job_type, queue)
        )

    def get_average_execution_time(
        self, job_type: str | None = None, *, queue: str | None = None
    ) -> timedelta | None:
        """Mean time from `leased` to `completed` over completed attempts; None if none."""
        histogram = self._total(job_type, queue).execution.get(Outcome.COMPLETED)
        if histogram is None or histogram.count == 0:
            return None
        return histogram.total / histogram.count

    def get_success_count(self, job_type: str | None = None, *, queue: str | None = None) -> int:
        """Attempts that completed."""
        return self._total(job_type, queue).completed

    def get_failure_count(self, job_type: str | None = None, *, queue: str | None = None) -> int:
        """Attempts that failed or whose lease expired (retried or not)."""
        return self._total(job_type, queue).failed_attempts

    def get_success_rate(
        self, job_type: str | None = None, *, queue: str | None = None
    ) -> float | None:
        """Completed attempts over finished attempts; None before any attempt finished."""
        total = self._total(job_type, queue)
        finished = total.completed + total.failed_attempts
        return None if finished == 0 else total.completed / finished

    def get_failure_rate(
        self, job_type: str | None = None, *, queue: str | None = None
    ) -> float | None:
        """Failed attempts over finished attempts; None before any attempt finished."""
        rate = self.get_success_rate(job_type, queue=queue)
        return None if rate is None else 1.0 - rate

    def get_retry_count(self, job_type: str | None = None, *, queue: str | None = None) -> int:
        """Retries scheduled after failed attempts."""
        return self._total(job_type, queue).retries

    def get_dead_count(self, job_type: str | None = None, *, queue: str | None = None) -> int:
        """Jobs that failed for good."""
        return self._total(job_type, queue).dead

    def get_queue_depth(
        self, queue: str | None = None, *, job_type: str | None = None
    ) -> dict[str, int]:
        """{"ready": n, "scheduled": n, "leased": n} now."""
        selected = list(self._select(job_type, queue))
        return {
            "ready": sum(item.ready for item in selected),
            "scheduled": sum(item.scheduled for item in selected),
            "leased": sum(item.leased for item in selected),
        }

    def get_oldest_ready_age(
        self, queue: str | None = None, *, job_type: str | None = None
    ) -> timedelta | None:
        """How long the longest-waiting ready job has been due; None when none is ready."""
        ages = [
            item.oldest_ready_age
            for item in self._select(job_type, queue)
            if item.oldest_ready_age is not None
        ]
        return max(ages, default=None)

    def counters(self, job_type: str | None = None, *, queue: str | None = None) -> SeriesCounters:
        """All running totals of the matching series, summed."""
        return self._total(job_type, queue)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary per queue and job type (for `dogqueue metrics --json`)."""
        rows: list[dict[str, object]] = []
        for item in self.series:
            counters = item.counters
            completed = counters.execution.get(Outcome.COMPLETED)
            rows.append(
                {
                    "tenant_id": item.key.tenant_id,
                    "queue": item.key.queue,
                    "job_type": item.key.job_type,
                    "by_status": {str(k): v for k, v in sorted(item.by_status.items())},
                    "ready": item.ready,
                    "scheduled": item.scheduled,
                    "leased": item.leased,
                    "oldest_ready_age_seconds": None
                    if item.oldest_ready_age is None
                    else item.oldest_ready_age.total_seconds(),
                    "enqueued": counters.enqueued,
                    "attempts": counters.attempts,
                    "completed": counters.completed,
                    "failed_attempts": counters.failed_attempts,
                    "retries": counters.retries,
                    "dead": counters.dead,
                    "canceled": counters.canceled,
                    "released": counters.released,
                    "requeued": counters.requeued,
                    "execution_seconds_sum": {
                        outcome: histogram.total.total_seconds()
                        for outcome, histogram in sorted(counters.execution.items())
                    },
                    "average_execution_seconds": None
                    if completed is None or completed.count == 0
                    else (completed.total / completed.count).total_seconds(),
                }
            )
        return {"at": self.at.isoformat(), "series": rows}


def _without_payload(message: JobMessage) -> JobMessage:
    return msgspec.structs.replace(message, payload_bytes=b"")


class MetricsFold:
    """The running fold of the log into metrics: apply events in log order, then snapshot.

    `last_position` is the log position of the last event applied, so a reader can
    continue from it. A job whose `enqueued` event was not applied is ignored.
    """

    def __init__(self) -> None:
        self.last_position = 0
        self._jobs: dict[tuple[str, str], _JobTrack] = {}
        self._counters: dict[SeriesKey, SeriesCounters] = {}

    def apply_all(self, events: Iterable[AnyEvent]) -> None:
        """Apply events in log order."""
        for event in events:
            self.apply(event)

    def apply(self, event: AnyEvent) -> None:
        """Fold one event in: the job's state moves by `evolve` (the one status machine),
        and each metric counts a transition between its states."""
        self.last_position = max(self.last_position, event.seq)
        key = (event.tenant_id, event.job_id)
        job = self._jobs.get(key)
        if job is None and not isinstance(event, Enqueued):
            return
        before = None if job is None else job.state
        try:
            after = evolve(before, event)
        except InvalidTransition:
            return  # metrics do not judge the log; `dogqueue verify` does
        if job is None:
            message = after.message
            series = SeriesKey(after.tenant_id, message.queue, message.job_type)
            counters = self._series(series)
            lean = msgspec.structs.replace(after, message=_without_payload(message))
            self._jobs[key] = _JobTrack(series, counters, lean)
            counters.enqueued += 1
            return
        assert before is not None
        job.state = after
        self._count(job, before, after, event)

    def _count(self, job: _JobTrack, before: JobInfo, after: JobInfo, event: AnyEvent) -> None:
        counters = job.counters
        match (before.status, after.status):
            case (JobStatus.ENQUEUED, JobStatus.LEASED):
                counters.attempts += 1
                counters.start_latency.observe(event.at - ready_since(before))
                job.lease_started_at = event.at
            case (JobStatus.LEASED, JobStatus.COMPLETED):
                counters.completed += 1
                self._observe_execution(job, counters, Outcome.COMPLETED, event.at)
            case (JobStatus.LEASED, JobStatus.ENQUEUED) if after.attempts < before.attempts:
                counters.released += 1  # a release gives the attempt back
                job.lease_started_at = None
            case (JobStatus.LEASED, JobStatus.ENQUEUED | JobStatus.FAILED):
                counters.failed_attempts += 1
                outcome = Outcome.EXPIRED if isinstance(event, Expired) else Outcome.FAILED
                self._observe_execution(job, counters, outcome, event.at)
                if after.status is JobStatus.FAILED:
                    counters.dead += 1
                else:
                    counters.retries += 1
            case (_, JobStatus.CANCELED) if before.status is not JobStatus.CANCELED:
                counters.canceled += 1
                job.lease_started_at = None
            case (JobStatus.FAILED | JobStatus.CANCELED, JobStatus.ENQUEUED):
                counters.requeued += 1
            case _:
                pass  # heartbeats change no metric

    def _series(self, key: SeriesKey) -> SeriesCounters:
        counters = self._counters.get(key)
        if counters is None:
            counters = self._counters[key] = SeriesCounters()
        return counters

    @staticmethod
    def _observe_execution(
        job: _JobTrack, counters: SeriesCounters, outcome: Outcome, at: datetime
    ) -> None:
        if job.lease_started_at is not None:
            counters.execution.setdefault(outcome, Histogram()).observe(at - job.lease_started_at)
        job.lease_started_at = None

    def snapshot(self, now: datetime, tenant_id: str | None = None) -> MetricsSnapshot:
        """The metrics at `now`, for one tenant or (None) for all."""
        by_status: dict[SeriesKey, dict[JobStatus, int]] = {}
        ready: dict[SeriesKey, int] = {}
        scheduled: dict[SeriesKey, int] = {}
        oldest_due: dict[SeriesKey, datetime] = {}
        for job in self._jobs.values():
            series, state = job.series, job.state
            if tenant_id is not None and series.tenant_id != tenant_id:
                continue
            statuses = by_status.setdefault(series, {})
            statuses[state.status] = statuses.get(state.status, 0) + 1
            if state.status is JobStatus.ENQUEUED:
                if is_ready(state, now):
                    ready[series] = ready.get(series, 0) + 1
                    due = ready_since(state)
                    if series not in oldest_due or due < oldest_due[series]:
                        oldest_due[series] = due
                else:
                    scheduled[series] = scheduled.get(series, 0) + 1
        return MetricsSnapshot(
            now,
            (
                SeriesMetrics(
                    key=series,
                    counters=counters.copy(),
                    by_status=by_status.get(series, {}),
                    ready=ready.get(series, 0),
                    scheduled=scheduled.get(series, 0),
                    oldest_ready_age=None
                    if series not in oldest_due
                    else max(now - oldest_due[series], timedelta(0)),
                )
                for series, counters in self._counters.items()
                if tenant_id is None or series.tenant_id == tenant_id
            ),
        )


def metrics_from_events(
    events: Iterable[AnyEvent], now: datetime, tenant_id: str | None = None
) -> MetricsSnapshot:
    """The snapshot at `now` of a whole log given in order."""
    fold = MetricsFold()
    fold.apply_all(events)
    return fold.snapshot(now, tenant_id)
