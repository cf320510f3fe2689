"""The engine's batch paths against its per-job paths: random rounds of concurrent calls
(plain, keyed and dependent enqueues, leases of N, settlements of N with duplicates and
forged leases, cancels, time passing) run on two backends alike but for the engine: one
runs consecutive plain enqueues, a lease of N and a settlement of N as one pass each,
the other job by job, as the engine did before. Their logs (every event's bytes and
position), their projections and every call's result must be the same."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dogqueue import Completion, Failure, JobMessage, LeasedJob, QueueConfig, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.clock import FakeClock
from dogqueue.core.commands import Lease
from dogqueue.core.errors import QueueError
from dogqueue.core.job import JobInfo, Settlement
from dogqueue.core.status import JobStatus
from dogqueue.core.validation import PreparedEnqueue
from dogqueue.engine import Engine, PlainEnqueue, Transaction, Unit, lease_of
from dogqueue.unitofwork import Reads

CTX = QueueCtx("acme")
START = datetime(2026, 1, 1, tzinfo=UTC)


class PerJobEngine(Engine):
    """The engine as it was before its batch paths: every job decided, appended and
    saved on its own (the reference)."""

    def enqueue_unit(self, prepared: PreparedEnqueue) -> Unit[list[str]]:
        reads, run = super().enqueue_unit(prepared)
        return Unit(reads, lambda tx, now: run(tx, now))  # not a PlainEnqueue: never grouped

    def create_plain(
        self, tx: Transaction, requests: Sequence[PlainEnqueue], now: datetime
    ) -> list[list[str]]:
        return [
            [self._create(tx, r.tenant_id, m, now, r.trace_context) for m in r.messages]
            for r in requests
        ]

    def dequeue_unit(
        self, tenant_id: str, queues: tuple[str, ...], duration: timedelta, limit: int
    ) -> Unit[list[LeasedJob]]:
        def run(tx: Transaction, now: datetime) -> list[LeasedJob]:
            self._reclaim(tx, tenant_id, now)
            leases = []
            for _ in range(limit):
                state = tx.next_ready(tenant_id, queues, now)
                if state is None:
                    break
                command = Lease(tenant_id=tenant_id, job_id=state.job_id, at=now, duration=duration)
                leases.append(lease_of(self._apply(tx, state, command)))
            return leases

        return Unit(Reads(ready=((tenant_id, queues, limit),), expired=(tenant_id,)), run)

    def _settle_all(
        self, tx: Transaction, tenant_id: str, settlements: Sequence[Settlement], now: datetime
    ) -> list[JobStatus | QueueError]:
        return self._settle_in_order(tx, tenant_id, settlements, now)


# -- the calls ---------------------------------------------------------------------------

enqueue = st.tuples(
    st.just("enqueue"),
    st.lists(  # per message: (queue, key or None, parent picks, run if a parent failed)
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])),
            st.lists(st.integers(0, 40), max_size=2),
            st.booleans(),
        ),
        min_size=1,
        max_size=3,
    ),
)
dequeue = st.tuples(st.just("dequeue"), st.integers(1, 5))
settle = st.tuples(
    st.just("settle"),
    st.lists(  # (lease pick, or a job pick to forge one; complete?; retry?)
        st.tuples(st.integers(0, 40), st.booleans(), st.booleans(), st.booleans()),
        min_size=1,
        max_size=5,
    ),
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 40))
advance = st.tuples(st.just("advance"), st.sampled_from([1, 40, 400]))
rounds = st.lists(
    st.lists(st.one_of(enqueue, dequeue, settle, cancel, advance), min_size=1, max_size=6),
    min_size=1,
    max_size=8,
)


class Driver:
    """One backend and what the calls so far made (job ids, leases), to resolve picks."""

    def __init__(self, backend: EngineBackend, clock: FakeClock) -> None:
        self.backend = backend
        self.clock = clock
        self.jobs: list[str] = []
        self.leases: list[LeasedJob] = []

    async def call(self, op: tuple[Any, ...]) -> Any:
        kind = op[0]
        try:
            if kind == "enqueue":
                return await self._enqueue(op[1])
            if kind == "dequeue":
                leases = await self.backend.dequeue_many(
                    CTX, ["a", "b"], op[1], lease_duration=timedelta(seconds=30)
                )
                self.leases += leases
                return [(lease.job_id, lease.lease_token) for lease in leases]
            if kind == "settle" and (settlements := self._settlements(op[1])):
                statuses = await self.backend.settle_many(CTX, settlements)
                return [_outcome(status) for status in statuses]
            if kind == "cancel" and self.jobs:
                return await self.backend.cancel_job(CTX, self.jobs[op[1] % len(self.jobs)])
            return None
        except QueueError as error:
            return _outcome(error)

    async def _enqueue(self, specs: list[tuple[str, str | None, list[int], bool]]) -> list[str]:
        messages = [
            JobMessage(
                job_type="t",
                payload_bytes=b"{}",
                queue=queue,
                idempotency_key=key,
                after=tuple(dict.fromkeys(self.jobs[p % len(self.jobs)] for p in parents))
                if self.jobs
                else (),
                on_parent_failure="run" if run_anyway else "cancel",
                max_retries=1,
            )
            for queue, key, parents, run_anyway in specs
        ]
        ids = await self.backend.enqueue_many(CTX, messages)
        self.jobs += ids
        return ids

    def _settlements(self, picks: list[tuple[int, bool, bool, bool]]) -> list[Settlement]:
        settlements: list[Settlement] = []
        for pick, forged, complete, retry in picks:
            if forged or not self.leases:
                if not self.jobs:
                    continue
                job_id = self.jobs[pick % len(self.jobs)]
                lease = LeasedJob(
                    job_id=job_id,
                    tenant_id=CTX.tenant_id,
                    message=JobMessage(job_type="t", payload_bytes=b"{}"),
                    lease_token=1,
                    lease_expires_at=START,
                    attempt=1,
                )
            else:
                lease = self.leases[pick % len(self.leases)]
            if complete:
                settlements.append(Completion(lease=lease))
            else:
                settlements.append(Failure(lease=lease, error="no", retry=retry))
        return settlements


def _outcome(value: Any) -> Any:
    return type(value).__name__ if isinstance(value, BaseException) else value


async def _run_round(driver: Driver, calls: list[tuple[Any, ...]]) -> list[Any]:
    results: list[Any] = []
    together: list[Coroutine[Any, Any, Any]] = []
    for op in calls:
        if op[0] == "advance":
            results += await asyncio.gather(*together)
            together = []
            driver.clock.advance(timedelta(seconds=op[1]))
            continue
        together.append(driver.call(op))
    return results + list(await asyncio.gather(*together))


def _open(kind: str, engine_type: type[Engine], folder: Path) -> Driver:
    clock = FakeClock(START)
    counter = itertools.count()
    draws = itertools.cycle([0.1, 0.7, 0.4])
    config = QueueConfig()
    backend: EngineBackend
    if kind == "sqlite":
        backend = SqliteBackend(folder / f"{engine_type.__name__}.db", clock=clock, config=config)
    else:
        backend = MemoryBackend(clock=clock, config=config)
    backend._engine = engine_type(
        config, new_id=lambda: f"job-{next(counter):05d}", draw=lambda: next(draws)
    )
    return Driver(backend, clock)


async def _state(driver: Driver) -> tuple[list[Any], list[JobInfo]]:
    reader = driver.backend.log_reader()
    records = [(r.pos, r.job_id, r.version, r.type, r.data, r.hash) for r in await reader.records()]
    return records, await reader.jobs()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
@settings(max_examples=60, deadline=None)
@given(plan=rounds)
def test_batch_paths_equal_the_per_job_paths(kind: str, plan: list[list[tuple[Any, ...]]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as folder:
            batched = _open(kind, Engine, Path(folder))
            per_job = _open(kind, PerJobEngine, Path(folder))
            async with batched.backend, per_job.backend:
                for calls in plan:
                    assert await _run_round(batched, calls) == await _run_round(per_job, calls)
                assert await _state(batched) == await _state(per_job)

    asyncio.run(run())
