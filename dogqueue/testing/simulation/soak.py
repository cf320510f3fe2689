"""The fleet simulation as a soak: the same fleet, faults and invariants on a real event
loop with real time and real I/O (a SQLite file by default). Not deterministic, so a
failure is not replayed, but every invariant of the simulation holds or the soak fails.

The real loop keeps the simulation's hosts: a killed host's callbacks are dropped, a
paused host's wait for the end of the pause, and `time()` read in a host's context is
its own clock, fast or slow. The backend's own work (a group commit's batch, say) runs as
the simulation's, not as the host whose call started it (see `HostView`).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time
from asyncio import events

from dogqueue.testing.simulation.loop import Host, HostClocks, host_of

#: A soak stops after this many callbacks without the workload ending.
SOAK_MAX_STEPS = 50_000_000


class _HostFilter(collections.deque):  # type: ignore[type-arg]
    """The loop's ready queue: what a dead or paused host would run next is set aside,
    and a cancelled stand-in (which the loop skips) runs in its place."""

    def __init__(self, loop: SoakLoop) -> None:
        super().__init__()
        self.loop = loop

    def popleft(self) -> events.Handle:
        handle: events.Handle = super().popleft()
        self.loop.steps += 1
        host = host_of(handle)
        if host is None or handle._cancelled:
            return handle
        if host.dead:
            self.loop._morgue.append(handle)
        elif host.paused_until > self.loop.now:
            self.loop._park(handle, host)
        else:
            return handle
        stand_in = events.Handle(_nothing, (), self.loop)
        stand_in.cancel()
        return stand_in


def _nothing() -> None:
    pass


class SoakLoop(HostClocks, asyncio.SelectorEventLoop):  # type: ignore[misc]  # call_at: see HostClocks
    """A real event loop that knows the simulation's hosts (see `SimLoop`)."""

    # BaseEventLoop's own state, which the typeshed stubs leave out.
    _stopping: bool

    def __init__(self) -> None:
        super().__init__()
        self._start = time.monotonic()
        self._ready: _HostFilter = _HostFilter(self)
        self._parked: list[events.Handle] = []
        self._morgue: list[events.Handle] = []
        #: Callbacks run so far.
        self.steps = 0
        self.max_steps = SOAK_MAX_STEPS

    @property
    def now(self) -> float:
        """Seconds since the loop was made (true time)."""
        return time.monotonic() - self._start

    def _park(self, handle: events.Handle, host: Host) -> None:
        self._parked.append(handle)
        self.call_at(host.paused_until, self._unpark, context=contextvars.Context())

    def _unpark(self) -> None:
        now, parked = self.now, self._parked
        self._parked = [h for h in parked if (host := host_of(h)) and host.paused_until > now]
        self._ready.extend(h for h in parked if h not in self._parked)

    def _run_once(self) -> None:
        if self.steps > self.max_steps:
            raise RuntimeError(f"over {self.max_steps} callbacks: a livelock")
        super()._run_once()  # type: ignore[misc]

    def revive(self, hosts: list[Host]) -> None:
        """Bring every host back with what it had left to run (see `SimLoop.revive`)."""
        for host in hosts:
            host.dead, host.paused_until = False, 0.0
        self._ready.extend(self._parked + self._morgue)
        self._parked, self._morgue = [], []
