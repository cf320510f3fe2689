"""Job ids: UUIDv7 strings, time-ordered so that new rows land at the end of an index."""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_job_id() -> str:
    """A new, unique job id, greater than every id made earlier in this process."""
    random_bits = int.from_bytes(os.urandom(8), "big")
    with _lock:
        ms, counter = _stamp(time.time_ns() // 1_000_000, random_bits)
    return _format(ms, counter, random_bits)


def new_job_ids(n: int) -> list[str]:
    """`n` new job ids in increasing order, as `new_job_id` called n times makes them
    (one read of random bytes and one look at the clock for all of them)."""
    randomness = os.urandom(8 * n)
    bits = [int.from_bytes(randomness[i : i + 8], "big") for i in range(0, 8 * n, 8)]
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


def _format(ms: int, counter: int, random_bits: int) -> str:
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76 | counter << 64
    value |= 0b10 << 62 | (random_bits & 0x3FFF_FFFF_FFFF_FFFF)
    digits = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, without the object
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
