"""One host's view of the shared backend: its own clock, its own cancel listeners, and
the storage faults of the plan.

Every host of a fleet reaches the same backend (one database) through a view. A cancel
made through a view is announced to that view's listeners only, as a backend object
announces the cancels made through it: workers of other hosts learn of it by reading
job states. Each call is one line of the trace; after each call, the new events of the
log go through the invariants.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dogqueue.core.errors import QueueError, StorageError
from dogqueue.core.status import JobStatus
from dogqueue.testing.simulation.loop import Host, on_host

if TYPE_CHECKING:
    from dogqueue.testing.simulation.run import Simulation

#: The contract's calls that reach storage (and so may fail or lose their reply).
CALLS = frozenset(
    {
        "enqueue",
        "enqueue_many",
        "dequeue",
        "dequeue_many",
        "heartbeat",
        "ack_complete",
        "ack_fail",
        "release",
        "settle_many",
        "cancel_job",
        "cancel_workflow",
        "retry_job",
        "get_status",
        "get_job",
        "history",
        "reap_expired",
        "ready_tenants",
        "next_run_at",
        "enqueue_ticks",
        "latest_tick",
    }
)
#: The calls among those that only read: the log cannot have grown, so the events are
#: read at the next call that writes (or at the end of the run).
READS = frozenset(
    {"get_status", "get_job", "history", "ready_tenants", "next_run_at", "latest_tick"}
)


class HostView:
    """The backend as `host` sees it (forwards everything else to `inner`)."""

    def __init__(self, inner: Any, host: Host, sim: Simulation) -> None:
        self.inner = inner
        self.host = host
        self.sim = sim
        self.calls = 0
        self._listeners: list[Callable[[str, str], None]] = []

    @property
    def config(self) -> Any:
        return self.inner.config

    @config.setter
    def config(self, value: Any) -> None:
        self.inner.config = value

    def clock(self) -> datetime:
        """This host's clock (fast or slow when the plan says so)."""
        return self.sim.datetime_at(self.host.local(self.sim.loop.now))

    def add_cancel_listener(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        """Call `listener(tenant_id, job_id)` after each cancel made through this view."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in CALLS:
            return attribute
        sim, host = self.sim, self.host

        async def call(*args: Any, **kwargs: Any) -> Any:
            number = self.calls
            self.calls += 1
            fault = sim.storage_fault(host, number)
            if fault == "storage" and number % 2 == 0:
                sim.trace(f"{host.name} {name} #{number} fails before commit")
                raise StorageError(f"simulated: {name} failed before its commit")
            writes = name not in READS
            work = attribute(*args, **kwargs)
            if sim.soak:
                # The backend is shared, so on the real loop its work runs as the
                # simulation's own: a task it starts (a group commit's batch) must not
                # die or pause with the host whose call started it, stalling every other
                # host's calls. (The seeded loop's memory backend starts none, and its
                # seeds keep their schedules.)
                work = sim.loop.create_task(work, context=on_host(None))
            try:
                result = await work
            except QueueError as error:
                await sim.after_call(host, name, type(error).__name__, writes)
                raise
            if name == "cancel_job" and result is JobStatus.CANCELED:
                sim.checker.canceled((args[0].tenant_id, args[1]), host, sim.loop.now)
                for listener in list(self._listeners):
                    listener(args[0].tenant_id, args[1])
            await sim.after_call(host, name, _summary(result), writes)
            if fault is not None:
                sim.trace(f"{host.name} {name} #{number} reply lost after commit")
                raise StorageError(f"simulated: {name} committed but its reply was lost")
            return result

        self.__dict__[name] = call
        return call


def _summary(result: object) -> str:
    """A short, deterministic description of a call's result for the trace."""
    if isinstance(result, list):
        return f"[{len(result)}]"
    if result is None or isinstance(result, (int, str)):
        return str(result)
    return type(result).__name__
