"""What a fleet runs: the simulated job types, and the producers and operators that
enqueue jobs, chains and chords and cancel them, all drawn from the seed."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

import msgspec

from dogqueue.client.adapter import QueueAdapter
from dogqueue.client.run import current_run
from dogqueue.core.errors import JobAlreadyExists, QueueError
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.jobs import Job, JobError
from dogqueue.testing.simulation.invariants import TICK_TYPE, Intent
from dogqueue.testing.simulation.loop import Host

if TYPE_CHECKING:
    from dogqueue.testing.simulation.run import Simulation

#: How long a producer waits before trying an enqueue again after a storage error.
RETRY_SECONDS = 0.25
#: A tenant that goes quiet: for how long before, and what share of its jobs are long.
QUIET_LAST_SECONDS = 3.0
QUIET_LONG_SHARE = 0.25


class HostContext:
    """What the jobs of one host get as their context: the host and the simulation."""

    def __init__(self, host: Host, sim: Simulation) -> None:
        self.host = host
        self.sim = sim


class Work(Job[HostContext, dict[str, Any]], kw_only=True):
    """Runs `seconds` of virtual time; fails its first `fail` attempts (for good when
    `fatal`). Its result names the lease token it ran under."""

    JOB_TYPE = "sim.work"
    seconds: float
    fail: int = 0
    fatal: bool = False

    async def execute(self, ctx: HostContext) -> dict[str, Any]:
        run = current_run()
        sim, checker = ctx.sim, ctx.sim.checker
        token = run.token
        execution = checker.started(ctx.host, run.tenant_id, run.job_id, token, sim.loop.now)
        try:
            await asyncio.sleep(self.seconds)
        except BaseException:
            checker.ended(execution, "cancelled", sim.loop.now)
            raise
        if run.attempt <= self.fail:
            checker.ended(execution, "failed", sim.loop.now)
            raise JobError(f"planned failure of attempt {run.attempt}", retryable=not self.fatal)
        checker.ended(execution, "done", sim.loop.now)
        return {"host": ctx.host.name, "token": token}


class Rare(Work, kw_only=True):
    """A job type some deploys lack."""

    JOB_TYPE = "sim.rare"


class Tick(Work, kw_only=True):
    """The schedules' job."""

    JOB_TYPE = TICK_TYPE


JOB_TYPES: tuple[type[Work], ...] = (Work, Rare, Tick)


async def register(adapter: QueueAdapter[Any], lacking: bool) -> None:
    """Register the job types of a host (without `sim.rare` when it lacks it)."""
    for job_type in JOB_TYPES:
        if not (lacking and job_type is Rare):
            await adapter.register_job(job_type)


class Producer:
    """Enqueues jobs, chains and chords at random times until `until`; each job has an
    idempotency key, so a retried enqueue whose reply was lost adds nothing."""

    def __init__(self, sim: Simulation, adapter: QueueAdapter[Any], until: float) -> None:
        self.sim = sim
        self.adapter = adapter
        self.until = until
        self.rng = random.Random(f"{sim.seed}:producer")
        self.count = 0
        #: The share of jobs made long (a tenant about to go quiet).
        self.long_share = 0.0

    def _job(self) -> Work:
        rng = self.rng
        seconds = rng.choice((0.01, 0.05, 0.1, 0.2, 0.5, 2.0, 5.0)) * rng.uniform(0.5, 1.5)
        if rng.random() < 0.02:  # longer than a lease: only heartbeats keep it
            seconds = rng.uniform(12.0, 25.0)
        if self.long_share and rng.random() < self.long_share:
            return Work(seconds=round(rng.uniform(15.0, 45.0), 3))
        fail = rng.choice((0, 0, 0, 0, 1, 2, 5))
        kind = Rare if rng.random() < 0.08 else Work
        return kind(seconds=round(seconds, 3), fail=fail, fatal=rng.random() < 0.1)

    def _message(self, job: Work, parents: tuple[int, ...], policy: str) -> JobMessage:
        rng = self.rng
        self.count += 1
        delay = rng.choice((0.0, 0.0, 0.0, 2.0, 10.0))
        message = self.adapter.message_for(
            job,
            run_at=self.sim.datetime_at(self.sim.loop.now + delay) if delay else None,
            idempotency_key=f"k{self.count}",
            max_retries=rng.randrange(0, 4),
            on_parent_failure="run" if policy == "run" else "cancel",
        )
        return msgspec.structs.replace(message, after_earlier=parents)

    def _batch(self) -> list[JobMessage]:
        rng = self.rng
        shape = rng.random()
        if shape < 0.8:
            return [self._message(self._job(), (), "cancel")]
        policy = "run" if rng.random() < 0.3 else "cancel"
        width = rng.randrange(2, 4)
        if shape < 0.9:  # a chain
            return [self._message(self._job(), (i - 1,) if i else (), policy) for i in range(width)]
        group = [self._message(self._job(), (), policy) for _ in range(width)]
        return [*group, self._message(self._job(), tuple(range(width)), policy)]

    async def run(self) -> None:
        rng, sim = self.rng, self.sim
        tenants = [QueueCtx(f"t{i}") for i in range(rng.randrange(1, 4))]
        # Tenants after the first go quiet early, a long job among their last ones:
        # only the reaper returns the leases their killed workers held (no dequeue of
        # theirs reclaims them).
        quiet_at = {ctx.tenant_id: rng.uniform(0.2, 0.5) * self.until for ctx in tenants[1:]}
        while sim.loop.now < self.until:
            await asyncio.sleep(rng.expovariate(sim.rate))
            now = sim.loop.now
            ctx = rng.choice([t for t in tenants if now < quiet_at.get(t.tenant_id, self.until)])
            ending = now >= quiet_at.get(ctx.tenant_id, self.until) - QUIET_LAST_SECONDS
            self.long_share = QUIET_LONG_SHARE if ending else 0.0
            batch = self._batch()
            for message in batch:
                key = message.idempotency_key
                assert key is not None
                parents = tuple(batch[i].idempotency_key or "" for i in message.after_earlier)
                sim.checker.intend(ctx.tenant_id, key, Intent(parents, message.on_parent_failure))
            await self._enqueue(ctx, batch)

    async def _enqueue(self, ctx: QueueCtx, batch: list[JobMessage]) -> None:
        while True:
            try:
                await self.adapter.backend.enqueue_many(ctx, batch)
                return
            except JobAlreadyExists:
                return  # an earlier try committed; its reply was lost
            except QueueError:
                await asyncio.sleep(RETRY_SECONDS)


class Operator:
    """Cancels jobs now and then, through one of the hosts, until `until`."""

    def __init__(self, sim: Simulation, until: float) -> None:
        self.sim = sim
        self.until = until
        self.rng = random.Random(f"{sim.seed}:operator")

    async def run(self) -> None:
        while self.sim.loop.now < self.until:
            await asyncio.sleep(self.rng.expovariate(0.5))
            await self.cancel_some(1, self.rng.choice(self.sim.hosts_for_cancels()))

    async def cancel_some(self, count: int, host: str) -> None:
        """Cancel `count` jobs not yet final (running ones first) through `host`."""
        checker = self.sim.checker
        jobs = checker.jobs
        open_jobs = sorted(
            (jobs[key].status is not JobStatus.LEASED, jobs[key].enqueue_seq, key)
            for key in checker.open_jobs
        )
        if not open_jobs:
            return
        running = [job for job in open_jobs if not job[0]]
        picks = running if len(running) >= count else open_jobs[: max(count, len(open_jobs) // 3)]
        backend = self.sim.view(host)
        for _, _, (tenant_id, job_id) in self.rng.sample(picks, min(count, len(picks))):
            try:
                await backend.cancel_job(QueueCtx(tenant_id), job_id)
            except QueueError:
                continue
