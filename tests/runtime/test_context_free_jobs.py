"""Class-based jobs whose `execute` takes no context (async and sync) run under a
worker and inline, next to jobs that take one."""

from __future__ import annotations

from dogqueue import Job, QueueAdapter, QueueCtx, SyncJob, Worker
from dogqueue.backend.memory import MemoryBackend
from dogqueue.jobs import takes_context

T = QueueCtx("t")


class Double(Job[None, int]):
    JOB_TYPE = "double"
    n: int

    async def execute(self) -> int:
        return self.n * 2


class Shout(SyncJob[None, str]):
    JOB_TYPE = "shout"
    text: str

    def execute(self) -> str:
        return self.text.upper()


class Scaled(Job[int, int]):
    JOB_TYPE = "scaled"
    n: int

    async def execute(self, ctx: int) -> int:
        return self.n * ctx


def test_which_classes_take_a_context() -> None:
    assert not takes_context(Double) and not takes_context(Shout)
    assert takes_context(Scaled)


async def test_a_worker_runs_jobs_with_and_without_a_context() -> None:
    async with MemoryBackend() as backend:
        adapter: QueueAdapter[int] = QueueAdapter(backend)
        for job_class in (Double, Shout, Scaled):
            await adapter.register_job(job_class)
        doubled = await adapter.enqueue(T, Double(n=21))
        shouted = await adapter.enqueue(T, Shout(text="hi"))
        scaled = await adapter.enqueue(T, Scaled(n=2))
        async with Worker(adapter, context=10, tenants=[T], handle_signals=False):
            assert await adapter.wait_result(T, doubled, timeout=20) == 42
            assert await adapter.wait_result(T, shouted, timeout=20) == "HI"
            assert await adapter.wait_result(T, scaled, timeout=20) == 20
