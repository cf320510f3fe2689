"""Job ids and retry jitter drawn from the seed instead of `os.urandom` and `random`."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dogqueue.backend.base import EngineBackend


def seeded_ids(rng: random.Random, clock: Callable[[], datetime]) -> Callable[[], str]:
    """UUIDv7-shaped job ids, time-ordered on `clock`, their random bits from `rng`."""
    last = [0, 0]

    def new_id() -> str:
        ms = int(clock().timestamp() * 1000)
        if ms <= last[0]:
            ms, counter = last[0], last[1] + 1
        else:
            counter = 0
        last[:] = [ms, counter]
        value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (counter & 0xFFF) << 64
        value |= 0b10 << 62 | rng.getrandbits(62)
        digits = f"{value:032x}"
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"

    return new_id


def seed_backend(backend: Any, seed: int, clock: Callable[[], datetime]) -> bool:
    """Give the engine under `backend` (through wrappers' `inner`) ids and jitter from
    the seed; False when there is none (its ids then escape, and the guard says so)."""
    while not isinstance(backend, EngineBackend):
        backend = getattr(backend, "inner", None)
        if backend is None:
            return False
    engine = backend._engine
    engine.new_id = seeded_ids(random.Random(f"{seed}:ids"), clock)
    engine.draw = random.Random(f"{seed}:jitter").random
    return True
