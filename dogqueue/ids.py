"""Job ids: UUIDv7 strings, time-ordered so that new rows land at the end of an index."""

from __future__ import annotations

import os
import struct
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
#: Random 64-bit draws made ahead: one `os.urandom` call per `_DRAWS` ids rather than a
#: system call per id (a lone enqueue makes one id per call). `list.pop` and `extend`
#: are atomic, so threads never share a draw.
_DRAWS = 256
_pool: list[int] = []
# A forked child must not make the ids its parent is about to make.
os.register_at_fork(after_in_child=_pool.clear)


def _draw() -> int:
    """64 random bits."""
    try:
        return _pool.pop()
    except IndexError:
        _pool.extend(struct.unpack(f">{_DRAWS}Q", os.urandom(8 * _DRAWS)))
        return _pool.pop()


def new_job_id() -> str:
    """A new, unique job id, greater than every id made earlier in this process."""
    random_bits = _draw()
    with _lock:
        ms, counter = _stamp(time.time_ns() // 1_000_000, random_bits)
    return _format(ms, counter, random_bits)


def new_job_ids(n: int) -> list[str]:
    """`n` new job ids in increasing order, as `new_job_id` called n times makes them
    (one read of random bytes and one look at the clock for all of them)."""
    bits = struct.unpack(f">{n}Q", os.urandom(8 * n))
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        stamps = [_stamp(now_ms, random_bits) for random_bits in bits]
    return [
        _format(ms, counter, random_bits)
        for (ms, counter), random_bits in zip(stamps, bits, strict=True)
    ]


def _stamp(now_ms: int, random_bits: int) -> tuple[int, int]:
    """The next id's millisecond and counter (under `_lock`)."""
    global _last_ms, _counter
    ms = now_ms
    if ms <= _last_ms:
        ms = _last_ms
        _counter += 1
        if _counter > 0xFFF:
            ms += 1
            _counter = random_bits >> 53
    else:
        _counter = random_bits >> 53  # 11 random bits leave room to count up
    _last_ms = ms
    return ms, _counter


#: str(uuid.UUID(...)) of a UUIDv7 from its five groups, without the object.
_UUID = "%08x-%04x-%04x-%04x-%012x"


def _format(ms: int, counter: int, random_bits: int) -> str:
    """The id of 48 bits of milliseconds, a 12-bit counter and 62 random bits, with the
    version (7) and variant (0b10) bits set."""
    return _UUID % (
        ms >> 16 & 0xFFFF_FFFF,
        ms & 0xFFFF,
        0x7000 | counter,
        0x8000 | random_bits >> 48 & 0x3FFF,
        random_bits & 0xFFFF_FFFF_FFFF,
    )
