"""Jobs and waiting helpers shared by the worker tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from dogqueue import Backend, Job, JobError, JobStatus, QueueCtx

#: The most a test waits for the worker to reach a state; reaching it sooner is the norm.
PATIENCE_SECONDS = 20.0


@dataclass
class Probe:
    """The context the test jobs run with: what they did, and gates they wait at."""

    runs: dict[str, int] = field(default_factory=dict)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0
    most_running: int = 0

    def began(self, name: str) -> None:
        self.runs[name] = self.runs.get(name, 0) + 1
        self.started.setdefault(name, asyncio.Event()).set()

    async def wait_started(self, name: str) -> None:
        await within(self.started.setdefault(name, asyncio.Event()).wait())


class Echo(Job[Probe, str]):
    """Returns its text."""

    JOB_TYPE = "echo"
    text: str

    async def execute(self, ctx: Probe) -> str:
        ctx.began(self.text)
        return self.text.upper()


class Flaky(Job[Probe, str]):
    """Fails `failures` times (retryably unless told otherwise), then succeeds."""

    JOB_TYPE = "flaky"
    name: str
    failures: int = 1
    retryable: bool = True

    async def execute(self, ctx: Probe) -> str:
        ctx.began(self.name)
        if ctx.runs[self.name] <= self.failures:
            raise JobError(f"flaky api said no to {self.name}", retryable=self.retryable)
        return "ok"


class Crashes(Job[Probe, None]):
    """Raises an unexpected exception."""

    JOB_TYPE = "crashes"
    name: str

    async def execute(self, ctx: Probe) -> None:
        ctx.began(self.name)
        _ = 1 // 0


class Blocks(Job[Probe, str]):
    """Waits at the probe's gate (forever unless opened), recording a cancellation."""

    JOB_TYPE = "blocks"
    name: str

    async def execute(self, ctx: Probe) -> str:
        ctx.began(self.name)
        try:
            await ctx.gate.wait()
        except asyncio.CancelledError:
            ctx.cancelled.append(self.name)
            raise
        return "passed"


class Slow(Blocks, kw_only=True):
    """Blocks, with a short timeout of its own."""

    JOB_TYPE = "slow"
    TIMEOUT = timedelta(milliseconds=50)


class Counted(Job[Probe, None]):
    """Tracks how many jobs run at once."""

    JOB_TYPE = "counted"
    name: str

    async def execute(self, ctx: Probe) -> None:
        ctx.began(self.name)
        ctx.running += 1
        ctx.most_running = max(ctx.most_running, ctx.running)
        try:
            await asyncio.sleep(0.005)
        finally:
            ctx.running -= 1


ALL_JOBS: list[type[Job[Probe, object]]] = [Echo, Flaky, Crashes, Blocks, Slow, Counted]


async def within(awaitable: Awaitable[object]) -> None:
    """Await, failing the test if it takes unreasonably long (a hang, not a slow run)."""
    await asyncio.wait_for(awaitable, PATIENCE_SECONDS)


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait until `condition()` holds."""

    async def poll() -> None:
        while not await condition():  # noqa: ASYNC110 (polling stored state)
            await asyncio.sleep(0.005)

    await within(poll())


async def until_status(backend: Backend, ctx: QueueCtx, job_id: str, *wanted: JobStatus) -> None:
    """Wait until the job has one of the `wanted` statuses."""

    async def reached() -> bool:
        return await backend.get_status(ctx, job_id) in wanted

    await until(reached)


async def event_types(backend: Backend, ctx: QueueCtx, job_id: str) -> list[str]:
    """The types of the job's events, in order."""
    return [event.type for event in await backend.history(ctx, job_id)]
