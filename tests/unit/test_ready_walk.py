"""The walk that finds the longest-waiting ready job reads jobs in run_at order and stops
early; whatever the jobs and chunking, it finds what the core's rule gives for all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.backend.browse import READY_CHUNK, earliest_ready_paged
from dogqueue.backend.memory import MemoryBackend
from dogqueue.core.job import JobInfo
from dogqueue.core.order import earliest_ready_since, ready_since

START = datetime(2030, 1, 1, tzinfo=UTC)


def _one_job() -> JobInfo:
    async def enqueue() -> JobInfo:
        async with MemoryBackend(clock=FakeClock(START)) as backend:
            ctx = QueueCtx("acme")
            job_id = await backend.enqueue(ctx, JobMessage(job_type="x", payload_bytes=b"{}"))
            return await backend.get_job(ctx, job_id)

    return asyncio.run(enqueue())


TEMPLATE = _one_job()
# (run_at, how long after it the job became ready: 0 for most, later for a release)
waits = st.lists(
    st.tuples(st.integers(0, 50), st.one_of(st.just(0), st.integers(0, 100))),
    max_size=3 * READY_CHUNK,
)


def _jobs(spec: list[tuple[int, int]]) -> list[JobInfo]:
    jobs = [
        msgspec.structs.replace(
            TEMPLATE,
            run_at=START + timedelta(minutes=run_at),
            updated_at=START + timedelta(minutes=run_at + wait),
            enqueue_seq=seq,
        )
        for seq, (run_at, wait) in enumerate(spec, 1)
    ]
    return sorted(jobs, key=lambda job: (job.run_at, job.enqueue_seq))


@given(waits)
def test_the_walk_finds_the_earliest_ready_since(spec: list[tuple[int, int]]) -> None:
    jobs = _jobs(spec)
    expected = min((ready_since(job) for job in jobs), default=None)
    assert earliest_ready_since(jobs) == expected

    async def ready_after(after: int | None, limit: int) -> list[tuple[int, JobInfo]]:
        start = 0 if after is None else after + 1
        return list(enumerate(jobs))[start : start + limit]

    assert asyncio.run(earliest_ready_paged(ready_after)) == expected


def test_a_crowd_released_late_is_read_past() -> None:
    """Many jobs due first but released late: the walk reads past them all, over
    several chunks, to a job that has waited since its run_at."""
    jobs = _jobs([(0, 90)] * (3 * READY_CHUNK) + [(1, 0)])
    reads: list[int] = []

    async def ready_after(after: int | None, limit: int) -> list[tuple[int, JobInfo]]:
        reads.append(limit)
        start = 0 if after is None else after + 1
        return list(enumerate(jobs))[start : start + limit]

    found = asyncio.run(earliest_ready_paged(ready_after))
    assert found == START + timedelta(minutes=1)
    assert reads == [READY_CHUNK, 2 * READY_CHUNK, 4 * READY_CHUNK]
