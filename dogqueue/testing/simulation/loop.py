"""A seeded event loop on virtual time: one seed is one interleaving.

Time moves only when no callback is ready: it jumps to the next timer (or to the end of
a host's pause). Among the ready callbacks, a seeded generator picks the one that runs
next. Every callback belongs to a host (`HOST`, a context variable each task inherits):
a paused host's callbacks wait for the pause to end, a killed host's are dropped (its
tasks stop between two awaits), and `time()` read in a host's context is that host's
own, possibly fast or slow, clock.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import heapq
import math
import random
from asyncio import events
from collections.abc import Callable
from typing import Any

#: A run stops after this many callbacks without the workload ending (a livelock)...
MAX_STEPS = 5_000_000
#: ... or after this many at one instant of virtual time (a busy loop).
MAX_STEPS_AT_ONCE = 100_000


class SimulationEscape(RuntimeError):
    """Something left the simulation's control: a real thread, a wall-clock read, a
    call from another thread."""


class Stalled(RuntimeError):
    """No callback is ready and no timer is set, yet the run has not ended."""


class Host:
    """One simulated machine: its clock rate, and whether it is paused or dead."""

    __slots__ = ("dead", "name", "origin", "origin_local", "paused_until", "rate")

    def __init__(self, name: str) -> None:
        self.name = name
        #: Local clock = origin_local + (true time - origin) * rate.
        self.rate = 1.0
        self.origin = 0.0
        self.origin_local = 0.0
        self.paused_until = 0.0
        self.dead = False

    def local(self, now: float) -> float:
        """This host's clock reading at true (virtual) time `now`."""
        return self.origin_local + (now - self.origin) * self.rate

    def true_time(self, local: float) -> float:
        """The earliest true time at which this host's clock reads `local` or later
        (rounding never leaves a timer due a hair before its time, to fire forever)."""
        when = self.origin + (local - self.origin_local) / self.rate
        while self.local(when) < local:
            when = math.nextafter(when, math.inf)
        return when

    def set_rate(self, now: float, rate: float) -> None:
        """From `now` on, the clock runs at `rate` times true time (no jump)."""
        self.origin_local = self.local(now)
        self.origin = now
        self.rate = rate

    def __repr__(self) -> str:
        return f"Host({self.name})"


#: The host the running callback belongs to (None: the simulation's own tasks).
HOST: contextvars.ContextVar[Host | None] = contextvars.ContextVar("dogqueue_sim_host")


def on_host(host: Host | None) -> contextvars.Context:
    """A context whose callbacks (and the tasks they create) belong to `host`."""
    context = contextvars.copy_context()
    context.run(HOST.set, host)
    return context


class SimTask(asyncio.Task):  # type: ignore[type-arg]
    """A task numbered in creation order (see `_order`)."""

    serial = 1 << 62
    #: The host the task was made on (None: the simulation's own).
    host: Host | None = None

    def __init__(
        self, coro: Any, *, loop: SimLoop, context: contextvars.Context | None, serial: int
    ) -> None:
        # Numbered before the task schedules its first step, which `_Ready` files by it.
        self.serial = serial
        self.host = HOST.get(None) if context is None else context.get(HOST, None)
        super().__init__(coro, loop=loop, context=context)


class SimFuture(asyncio.Future):  # type: ignore[type-arg]
    """A future numbered in creation order (see `_order`)."""

    serial = 1 << 62


_NUMBERED = (SimTask, SimFuture)


def _order(handle: events.Handle) -> int:
    """Where a ready callback stands before the seed picks one: the number of the task
    or future it belongs to (its own, or the one it is called with). Set iteration
    order (hashes of addresses) then never reaches the schedule."""
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if isinstance(owner, _NUMBERED):
        return owner.serial
    args = handle._args
    if args and isinstance(args[0], _NUMBERED):
        return args[0].serial
    return SimTask.serial


class _Ready:
    """The ready callbacks, kept in `_order` as they come (a sort on every step costs
    more): equal orders keep their arrival order, as a stable sort would."""

    __slots__ = ("handles", "orders")

    def __init__(self) -> None:
        self.orders: list[int] = []
        self.handles: list[events.Handle] = []

    def append(self, handle: events.Handle) -> None:
        callback = handle._callback  # type: ignore[attr-defined]
        owner = getattr(callback, "__self__", None)  # _order's first case, inlined
        order = owner.serial if isinstance(owner, _NUMBERED) else _order(handle)
        orders = self.orders
        if not orders or orders[-1] <= order:
            orders.append(order)
            self.handles.append(handle)
            return
        index = bisect.bisect_right(orders, order)
        orders.insert(index, order)
        self.handles.insert(index, handle)

    def extend(self, handles: list[events.Handle]) -> None:
        for handle in handles:
            self.append(handle)

    def pop(self, index: int = -1) -> events.Handle:
        self.orders.pop(index)
        return self.handles.pop(index)

    def clear(self) -> None:
        self.orders.clear()
        self.handles.clear()

    def __len__(self) -> int:
        return len(self.handles)


def host_of(handle: events.Handle) -> Host | None:
    """The host a callback belongs to (None: the simulation's own)."""
    context: contextvars.Context | None = getattr(handle, "_context", None)
    return None if context is None else context.get(HOST, None)


class HostClocks(asyncio.AbstractEventLoop):
    """Time as each host reads it: `time()` and `call_at` in the calling host's clock,
    timers kept in true time (`now`)."""

    @property
    def now(self) -> float:
        """True time, in seconds from the start of the run."""
        raise NotImplementedError

    def time(self) -> float:
        host = HOST.get(None)
        if host is None or host.rate == 1.0:
            return self.now
        return host.local(self.now)

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> events.TimerHandle:
        host = HOST.get(None)
        if host is not None and host.rate != 1.0:
            when = host.true_time(when)  # asked in the caller's clock, kept in true time
        return super().call_at(when, callback, *args, context=context)


class SimLoop(HostClocks, asyncio.BaseEventLoop):  # type: ignore[misc]  # call_at: see HostClocks
    """The event loop of a simulation: virtual time and a seeded choice of what runs."""

    # BaseEventLoop's own state, which the typeshed stubs leave out.
    _scheduled: list[events.TimerHandle]
    _stopping: bool

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._ready = _Ready()
        self._rng = rng
        self._now = 0.0
        self._parked: list[events.Handle] = []
        #: What killed hosts would have run next (only `revive` runs it, to unwind).
        self._morgue: list[events.Handle] = []
        #: Callbacks run so far.
        self.steps = 0
        #: A run stops after this many callbacks (a livelock).
        self.max_steps = MAX_STEPS
        #: Called after each callback (the invariants that are cheap enough).
        self._made = 0
        self._instant = 0
        self.set_task_factory(self._new_task)

    def _new_task(self, loop: asyncio.AbstractEventLoop, coro: Any, context: Any = None) -> SimTask:
        self._made += 1
        assert loop is self
        return SimTask(coro, loop=self, context=context, serial=self._made)

    def create_future(self) -> SimFuture:
        future = SimFuture(loop=self)
        self._made += 1
        future.serial = self._made
        return future

    # -- time ------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """True virtual time, in seconds from the start of the run."""
        return self._now

    def time(self) -> float:
        host = HOST.get(None)  # HostClocks.time, without the property: a hot path
        if host is None or host.rate == 1.0:
            return self._now
        return host.local(self._now)

    # -- the scheduler ---------------------------------------------------------------

    def _run_once(self) -> None:
        ready = self._ready
        scheduled = self._scheduled
        while scheduled and scheduled[0]._cancelled:
            heapq.heappop(scheduled)._scheduled = False  # type: ignore[attr-defined]
        if not ready.handles:
            self._advance()
            self._instant = self.steps
        elif scheduled and scheduled[0].when() <= self._now:
            self._fire_due()
        steps = self.steps = self.steps + 1
        if steps > self.max_steps:
            raise Stalled(f"over {self.max_steps} callbacks: a livelock")
        if steps - self._instant > MAX_STEPS_AT_ONCE:
            raise Stalled(f"{MAX_STEPS_AT_ONCE} callbacks without time moving: a busy loop")
        count = len(ready.handles)
        handle = ready.pop(self._rng.randrange(count) if count > 1 else -1)
        if handle._cancelled:
            return
        host = host_of(handle)
        if host is not None:
            if host.dead:
                self._morgue.append(handle)  # a killed machine runs nothing more
                return
            if host.paused_until > self._now:
                self._parked.append(handle)
                return
        handle._run()

    def _advance(self) -> None:
        """Nothing is ready: move time to the next timer or pause end, and make ready
        what is due then."""
        scheduled = self._scheduled
        candidates = [scheduled[0].when()] if scheduled else []
        if self._parked:
            candidates.append(min(host.paused_until for h in self._parked if (host := host_of(h))))
        if not candidates:
            raise Stalled("no callback ready and no timer set")
        self._now = max(self._now, min(candidates))
        self._fire_due()
        if self._parked:
            waiting = []
            for handle in self._parked:
                host = host_of(handle)
                if host is not None and host.paused_until > self._now:
                    waiting.append(handle)
                else:
                    self._ready.append(handle)
            self._parked = waiting

    def _fire_due(self) -> None:
        scheduled = self._scheduled
        now = self._now
        while scheduled and scheduled[0].when() <= now:
            timer = heapq.heappop(scheduled)
            timer._scheduled = False  # type: ignore[attr-defined]
            if not timer._cancelled:
                self._ready.append(timer)

    def revive(self, hosts: list[Host]) -> None:
        """Bring every host back, paused or killed, with what it had left to run: the
        run is over, and its tasks may now be cancelled and unwound."""
        for host in hosts:
            host.dead, host.paused_until = False, 0.0
        self._ready.extend(self._parked + self._morgue)
        self._parked, self._morgue = [], []

    # -- what a simulation must not do ------------------------------------------------

    def _write_to_self(self) -> None:
        raise SimulationEscape("call_soon_threadsafe: another thread touched the loop")

    def _process_events(self, event_list: list[Any]) -> None:  # pragma: no cover
        raise SimulationEscape("I/O readiness events in a simulation")

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> Any:  # type: ignore[override]
        raise SimulationEscape(f"run_in_executor({func!r}): a real thread")
