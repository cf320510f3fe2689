"""Escapes: what dogqueue code reads from outside the seed during a run.

While a run is on, wall-clock reads (`time.monotonic`, `time.time`, `time.time_ns`,
`time.perf_counter`) and `os.urandom` made by dogqueue's own modules are answered from
the simulation (the loop's time; the seed) and recorded; starting a real thread raises.
A recorded read that `KNOWN` does not excuse fails the run: a new wall-clock read in the
worker path is found the day it is written, not as a flake months later.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dogqueue.testing.simulation.loop import SimLoop, SimulationEscape

#: Reads answered with virtual time that are known and harmless, with the reason.
KNOWN: dict[tuple[str, str], str] = {
    ("dogqueue.observability.execution", "perf_counter"): "the log line's duration only",
    ("dogqueue.observability.tracing", "monotonic"): "how often the environment is read for"
    " an OpenTelemetry provider (the answer cannot change during a run)",
}
#: Reads known today but not yet routed through the loop's clock (design/simulation.md):
#: answered with the loop's time, so runs stay deterministic, and listed in the report.
PENDING: dict[tuple[str, str], str] = {}
_OWN = "dogqueue.testing.simulation"
#: Virtual time 0 as a Unix timestamp (what `time.time` answers dogqueue code).
EPOCH_SECONDS = 1_893_456_000.0  # 2030-01-01T00:00:00Z


class Guard:
    """Answers and records the escapes of one run."""

    def __init__(self, loop: SimLoop, rng: random.Random) -> None:
        self.loop = loop
        self.rng = rng
        #: (module, what) -> where it was first read (module:line).
        self.reads: dict[tuple[str, str], str] = {}

    def unexcused(self) -> list[str]:
        """The recorded reads neither KNOWN nor PENDING."""
        return [
            f"{what} read by {where}"
            for (module, what), where in sorted(self.reads.items())
            if (module, what) not in KNOWN and (module, what) not in PENDING
        ]

    def pending(self) -> list[str]:
        """The recorded reads PENDING excuses (for the report)."""
        return [
            f"{what} read by {where}"
            for (m, what), where in sorted(self.reads.items())
            if (m, what) in PENDING
        ]

    def _caller(self, what: str) -> str | None:
        """The dogqueue module that called `what` (None: someone else's read)."""
        frame = sys._getframe(2)
        module: str = frame.f_globals.get("__name__", "")
        if not module.startswith("dogqueue") or module.startswith(_OWN):
            return None
        key = (module, what)
        if key not in self.reads:
            self.reads[key] = f"{module}:{frame.f_lineno}"
        return module

    def clock(self, what: str, real: Callable[[], float], offset: float) -> Callable[[], float]:
        def read() -> float:
            if self._caller(what) is None:
                return real()
            return offset + self.loop.time()

        return read

    def time_ns(self, real: Callable[[], int]) -> Callable[[], int]:
        def read() -> int:
            if self._caller("time_ns") is None:
                return real()
            return int((EPOCH_SECONDS + self.loop.time()) * 1e9)

        return read

    def urandom(self, real: Callable[[int], bytes]) -> Callable[[int], bytes]:
        def read(n: int) -> bytes:
            if self._caller("urandom") is None:
                return real(n)
            return self.rng.randbytes(n)

        return read


@contextmanager
def guarded(guard: Guard) -> Iterator[None]:
    """Route the escapes of dogqueue code to `guard` for the duration of a run."""
    saved: list[tuple[Any, str, Any]] = [
        (time, "monotonic", time.monotonic),
        (time, "perf_counter", time.perf_counter),
        (time, "time", time.time),
        (time, "time_ns", time.time_ns),
        (os, "urandom", os.urandom),
        (threading.Thread, "start", threading.Thread.start),
    ]
    loop_thread = threading.get_ident()
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if threading.get_ident() == loop_thread:
            raise SimulationEscape(f"a real thread was started: {thread.name}")
        real_start(thread)

    time.monotonic = guard.clock("monotonic", time.monotonic, 0.0)
    time.perf_counter = guard.clock("perf_counter", time.perf_counter, 0.0)
    time.time = guard.clock("time", time.time, EPOCH_SECONDS)
    time.time_ns = guard.time_ns(time.time_ns)
    os.urandom = guard.urandom(os.urandom)
    threading.Thread.start = start  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
