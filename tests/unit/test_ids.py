"""Job ids are canonical UUIDv7 strings, each greater than the one made before; a
backend may be given its own id generator."""

from __future__ import annotations

import itertools
import os
import uuid

from dogqueue import JobMessage, QueueCtx, ids
from dogqueue.backend.memory import MemoryBackend
from dogqueue.ids import new_job_id, new_job_ids


def test_ids_are_canonical_uuid7_strings_in_increasing_order() -> None:
    ids = [new_job_id() for _ in range(5_000)]
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert str(parsed) == job_id
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_ids_made_at_once_are_like_ids_made_one_by_one() -> None:
    """`new_job_ids` (one read of random bytes for many) keeps the same form and order,
    with ids made one by one before and after it, across the 4,096 a millisecond holds."""
    ids = [new_job_id(), *new_job_ids(10_000), new_job_id(), *new_job_ids(1), *new_job_ids(0)]
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert str(parsed) == job_id
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 10_003
    random_parts = {job_id[19:] for job_id in ids}  # variant and 62 random bits
    assert len(random_parts) == len(ids)


async def test_a_memory_backend_takes_its_job_ids_from_new_id() -> None:
    """A seeded run replays the same ids: the generator is injected like `draw`."""
    numbers = itertools.count(1)
    async with MemoryBackend(new_id=lambda: f"job-{next(numbers):04d}") as backend:
        ctx = QueueCtx("acme")
        first = await backend.enqueue(ctx, JobMessage(job_type="t", payload_bytes=b"{}"))
        more = await backend.enqueue_many(
            ctx, [JobMessage(job_type="t", payload_bytes=b"{}") for _ in range(2)]
        )
        assert [first, *more] == ["job-0001", "job-0002", "job-0003"]
        assert (await backend.get_job(ctx, "job-0002")).job_id == "job-0002"


def test_an_id_carries_its_millisecond_counter_and_random_bits_where_uuidv7_puts_them() -> None:
    """The fields read back through `uuid.UUID` are the ones the id was made of, at the
    extremes of each field too."""
    for ms, counter, random_bits in [
        (0, 0, 0),
        (2**48 - 1, 0xFFF, 2**64 - 1),
        (1_733_400_000_123, 0x5A5, 0x0123_4567_89AB_CDEF),
    ]:
        parsed = uuid.UUID(ids._format(ms, counter, random_bits))
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == ms
        assert parsed.int >> 64 & 0xFFF == counter
        assert parsed.int & (2**62 - 1) == random_bits & (2**62 - 1)


def test_a_forked_child_does_not_make_the_ids_its_parent_makes_next() -> None:
    """Random bits are drawn ahead in a pool: a child forked with a full pool must draw
    its own, not the ones its parent is about to use."""
    new_job_id()  # the pool now holds draws made ahead
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write_end, "".join(new_job_id()[19:] for _ in range(8)).encode())
        os._exit(0)
    os.close(write_end)
    parents = "".join(new_job_id()[19:] for _ in range(8))
    with os.fdopen(read_end, "rb") as pipe:
        childs = pipe.read().decode()
    os.waitpid(child, 0)
    assert len(childs) == len(parents) == 8 * 17
    assert not {childs[i : i + 17] for i in range(0, len(childs), 17)} & {
        parents[i : i + 17] for i in range(0, len(parents), 17)
    }
