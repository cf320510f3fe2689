"""Properties of the verifier over every possible single edit of an honest log: each
flipped bit, deleted event and swapped pair is found, at its own position."""

from __future__ import annotations

import asyncio
from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from dogqueue import FakeClock
from dogqueue.audit.verify import verify_records
from dogqueue.backend.memory import MemoryBackend
from dogqueue.log.reader import LogRecord
from tests.audit.audit_workload import write_story


@cache
def honest() -> tuple[LogRecord, ...]:
    """The story's log, written once by the memory backend."""

    async def write() -> tuple[LogRecord, ...]:
        clock = FakeClock()
        async with MemoryBackend(clock=clock, draw=lambda: 0.5) as backend:
            await write_story(backend, clock)
            return tuple(await backend.log_reader().records())

    return asyncio.run(write())


def index() -> st.SearchStrategy[int]:
    return st.integers(0, len(honest()) - 1)


def test_the_honest_log_verifies() -> None:
    assert verify_records(honest()).ok


@given(index(), st.integers(0, 10_000), st.integers(0, 7))
def test_any_flipped_bit_is_found_at_its_event(i: int, position: int, bit: int) -> None:
    records = list(honest())
    data = bytearray(records[i].data)
    data[position % len(data)] ^= 1 << bit
    records[i] = records[i]._replace(data=bytes(data))
    assert verify_records(records).first_bad_seq == records[i].pos


@given(st.integers(0, len(honest()) - 2))
def test_any_deleted_event_but_the_last_is_found_where_it_was(i: int) -> None:
    records = list(honest())
    deleted = records.pop(i)
    assert verify_records(records).first_bad_seq == deleted.pos


@given(index(), index())
def test_any_swapped_pair_is_found_at_the_first(i: int, j: int) -> None:
    records = list(honest())
    if records[i].data == records[j].data:
        return
    first, second = sorted((i, j))

    def swap(a: LogRecord, b: LogRecord) -> LogRecord:
        return a._replace(pos=b.pos)

    records[first], records[second] = (
        swap(records[second], records[first]),
        swap(records[first], records[second]),
    )
    assert verify_records(records).first_bad_seq == records[first].pos
