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
    return new_job_ids(1)[0]


def new_job_ids(n: int) -> list[str]:
    """`n` new job ids in increasing order, as `new_job_id` called n times makes them
    (one read of random bytes and one look at the clock for all of them)."""
    global _last_ms, _counter
    randomness = os.urandom(8 * n)
    ids = []
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        for i in range(n):
            random_bits = int.from_bytes(randomness[8 * i : 8 * i + 8], "big")
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
            value = (ms & 0xFFFF_FFFF_FFFF) << 80
            value |= 0x7 << 76 | _counter << 64
            value |= 0b10 << 62 | (random_bits & 0x3FFF_FFFF_FFFF_FFFF)
            digits = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, no object
            ids.append(f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}")
    return ids
