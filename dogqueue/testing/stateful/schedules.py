"""Schedules (cron): each due tick enqueued exactly once, in UTC and in zones ahead of
it by a fractional hour, compared with the model's arithmetic."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, multiple, rule

from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.testing.model import due_ticks, record_tick, schedule_key
from dogqueue.testing.stateful.common import (
    JOBS,
    QUEUES,
    SCHEDULES,
    Schedule,
    replace,
    schedule_spec,
    schedules,
    tenants,
)
from dogqueue.testing.stateful.coverage import compared, drawn
from dogqueue.testing.stateful.operations import Operations

HALF_PAST_KOLKATA = SCHEDULES[2]
#: The fixed offsets of the zones the schedules use (none keeps daylight saving time).
ZONE_OFFSETS = {
    "UTC": timedelta(0),
    "Asia/Kolkata": timedelta(hours=5, minutes=30),
    "Asia/Kathmandu": timedelta(hours=5, minutes=45),
}

drawn(["Backend.enqueue_ticks", "Backend.latest_tick"], "ctx.tenant_id", "two tenants")
drawn("Backend.enqueue_ticks", "schedule.name", "four names")
drawn("Backend.enqueue_ticks", "schedule.cron", "every minute, every 15 minutes, hourly")
drawn("Backend.enqueue_ticks", "schedule.timezone", "UTC, Asia/Kolkata, Asia/Kathmandu")
drawn("Backend.enqueue_ticks", "schedule.catch_up", "1, 2, 3")
drawn("Backend.enqueue_ticks", "schedule.message", "non-UTF-8 payload, either queue")
drawn("Backend.enqueue_ticks", "now", "the clock, after whole and sub-second moves")
drawn("Backend.latest_tick", "name", "each schedule's name, '' refused")
compared("Backend.enqueue_ticks", "return", "one new id per due tick, oldest first")
compared("Backend.latest_tick", "return", "the model's newest tick and its job id")


class Schedules(Operations):
    """Schedule rules and the one-job-per-tick invariant."""

    @rule(target=JOBS, tenant=tenants, schedule=schedules, queue=st.sampled_from(QUEUES))
    def enqueue_ticks(self, tenant: str, schedule: Schedule, queue: str) -> Any:
        return multiple(*self.do_enqueue_ticks(tenant, schedule, queue))

    def do_enqueue_ticks(self, tenant: str, schedule: Schedule, queue: str) -> list[str]:
        """The schedule's due ticks: exactly those the model expects, each one job."""
        name, _, seconds, catch_up, zone = schedule
        now = self.clock()
        spec = schedule_spec(schedule, queue)
        every = timedelta(seconds=seconds)
        minute = schedule[1].split()[0]
        # The tick grid is the zone's, shifted by the minute the cron names.
        shift = ZONE_OFFSETS[zone] - timedelta(minutes=int(minute) if minute.isdigit() else 0)
        due = due_ticks(self.model, tenant, name, every, catch_up, now, shift)
        job_ids = self.run(self.backend.enqueue_ticks(QueueCtx(tenant), spec, now))
        assert isinstance(job_ids, list), f"enqueue_ticks returned {job_ids!r}"
        assert len(job_ids) == len(due), (
            f"enqueue_ticks of {name} at {now} enqueued {len(job_ids)} jobs; the due ticks"
            f" are {due}"
        )
        for job_id, tick in zip(job_ids, due, strict=True):
            keyed = replace(spec.message, idempotency_key=schedule_key(name, tick), run_at=tick)
            self.record_enqueued(tenant, job_id, keyed)
            record_tick(self.model, tenant, name, tick, job_id)
        return job_ids

    @initialize(target=JOBS, tenant=tenants, schedule=schedules)
    def probe_ticks(self, tenant: str, schedule: Schedule) -> Any:
        """Each example also starts by enqueueing a schedule's tick and asking again at
        the same moment (nothing more may be enqueued), so a backend that enqueues a
        tick twice is caught in the first example; then a Kolkata schedule's first tick
        and, three hours on, its missed ticks up to its catch-up."""
        job_ids = self.do_enqueue_ticks(tenant, schedule, QUEUES[0])
        job_ids += self.do_enqueue_ticks(tenant, schedule, QUEUES[0])
        # Ticks missed for three hours: catch_up bounds how many are enqueued, and a zone
        # half an hour off UTC puts them half an hour off.
        job_ids += self.do_enqueue_ticks(tenant, HALF_PAST_KOLKATA, QUEUES[1])
        self.adopt_retry_times()  # before the clock passes the retries of earlier probes
        self.clock.advance(timedelta(hours=3))
        job_ids += self.do_enqueue_ticks(tenant, HALF_PAST_KOLKATA, QUEUES[1])
        self.latest_tick(tenant, schedule)
        self.latest_tick(tenant, HALF_PAST_KOLKATA)
        self.do_reap()  # the leases of earlier probes ended in those three hours
        self.do_rebuild()
        return multiple(*job_ids)

    @rule(tenant=tenants, schedule=schedules)
    def latest_tick(self, tenant: str, schedule: Schedule) -> None:
        name = schedule[0]
        ticks = self.model.ticks.get((tenant, name))
        expected = None if not ticks else (max(ticks), ticks[max(ticks)])
        got = self.run(self.backend.latest_tick(QueueCtx(tenant), name))
        assert got == expected, f"latest_tick of {name}: {got}, expected {expected}"

    def check_each_tick_has_one_job(self, projected: dict[tuple[str, str], JobInfo]) -> None:
        """Invariant: each (schedule, tick) has exactly one job, and only the model's
        ticks have (checked on the projection `backend_matches_model` reads)."""
        held = Counter(
            (tenant, job.message.idempotency_key)
            for (tenant, _), job in projected.items()
            if (job.message.idempotency_key or "").startswith("dogqueue.cron:")
        )
        repeated = {key: count for key, count in held.items() if count > 1}
        assert not repeated, f"ticks with more than one job: {repeated}"
        expected = {
            (tenant, schedule_key(name, tick))
            for (tenant, name), ticks in self.model.ticks.items()
            for tick in ticks
        }
        assert set(held) == expected, f"tick jobs {sorted(held)} != model {sorted(expected)}"
