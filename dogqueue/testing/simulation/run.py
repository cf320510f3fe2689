"""One seeded run of a fleet: real `Worker`s, a producer, an operator and the fault plan
on a `SimLoop`, with the invariants checked as the log grows."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec

from dogqueue.backend.contract import Backend
from dogqueue.client.adapter import QueueAdapter
from dogqueue.core.config import QueueConfig
from dogqueue.schedules import Schedule
from dogqueue.testing.factories import BackendFactory, MemoryFactory, SqliteFactory
from dogqueue.testing.simulation.faults import Fault, draw_plan
from dogqueue.testing.simulation.fleet import HostContext, Operator, Producer, Tick, register
from dogqueue.testing.simulation.guard import Guard, guarded
from dogqueue.testing.simulation.invariants import (
    Checker,
    Violation,
    check_fold,
    check_projection,
)
from dogqueue.testing.simulation.loop import Host, SimLoop, SimulationEscape, on_host
from dogqueue.testing.simulation.seeded import seed_backend
from dogqueue.testing.simulation.soak import SoakLoop
from dogqueue.testing.simulation.stuck import describe_backend, describe_tasks
from dogqueue.testing.simulation.view import HostView
from dogqueue.worker import Worker

#: Virtual time 0.
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=10)
CONFIG = QueueConfig(
    default_lease_duration=LEASE,
    reaper_interval=timedelta(seconds=2),
    base_retry_backoff=timedelta(seconds=1),
    max_retry_backoff=timedelta(seconds=8),
)
#: About how long the producer's jobs run on average (virtual s), to size its rate.
MEAN_JOB_SECONDS = 1.5
#: After the last fault and the last enqueue, every job ends within this (virtual s).
LIVENESS_SECONDS = 900.0
#: How often the monitor checks cancel deadlines and liveness, ...
MONITOR_SECONDS = 1.0
#: ... every how many of those the projection against the checker's fold of the log ...
FOLD_EVERY = 10
#: ... and every how many of those (and at the end) against a fold of the whole log,
#: read again from its start (which also finds an event changed after it was checked).
FULL_FOLD_EVERY = 10
#: Callbacks allowed to unwind the tasks left at the end.
TEARDOWN_STEPS = 200_000
TEARDOWN_ROUNDS = 5
#: On the soak's real loop, how long one teardown round waits for cancelled tasks (and
#: the close for the backend): what is still stuck then is reported (`stuck.py`) and
#: closed, instead of holding the run for ever.
SOAK_TEARDOWN_SECONDS = 10.0
#: The name of the teardown's own waits (left out of what it reports).
_WAITS = "teardown: waits for the tasks"


@dataclass
class Outcome:
    """What one run did and found."""

    seed: int
    #: The faults that fired, in order (the plan a shrink starts from).
    fired: list[Fault]
    failure: Violation | None
    trace: list[str]
    log: bytes
    lifecycles: int
    virtual_seconds: float
    steps: int
    #: Wall-clock reads known but not yet routed through the loop (guard.PENDING).
    pending_escapes: list[str] = field(default_factory=list)
    #: What a soak's teardown found stuck past its bound: tasks, their awaits, and what
    #: the backend held (empty when it ended in time).
    stuck: list[str] = field(default_factory=list)


class Simulation:
    """A fleet run for one seed (and, when shrinking, an explicit fault plan)."""

    def __init__(
        self,
        seed: int,
        *,
        factory: BackendFactory | None = None,
        worker_class: type[Worker[Any]] = Worker,
        plan: list[Fault] | None = None,
        scale: float = 1.0,
        soak: bool = False,
    ) -> None:
        self.seed = seed
        #: On a real loop with real time and I/O (`soak.py`; SQLite by default).
        self.soak = soak
        self.factory = factory or (SqliteFactory() if soak else MemoryFactory())
        self.worker_class = worker_class
        shape = random.Random(f"{seed}:shape")
        self.workers = [f"w{i}" for i in range(1, shape.randrange(2, 5) + 1)]
        #: Jobs (or batches) a second, and how long the producer runs (virtual s).
        self.concurrency = {name: shape.randrange(4, 33) for name in self.workers}
        slots = sum(self.concurrency.values())
        self.rate = shape.uniform(0.2, 0.6) * slots / MEAN_JOB_SECONDS
        self.produce_until = shape.uniform(20.0, 45.0) * scale
        self.window = self.produce_until
        self.plan = (
            plan
            if plan is not None
            else draw_plan(random.Random(f"{seed}:faults"), self.workers, self.window)
        )
        self.checker = Checker()
        self.hosts: dict[str, Host] = {}
        self.views: dict[str, HostView] = {}
        self.worker_of: dict[str, tuple[Worker[Any], asyncio.Task[None]]] = {}
        self.lacking = {f.host for f in self.plan if f.kind == "lacks"}
        self._storage = {(f.host, int(f.at)): f for f in self.plan if f.kind in ("storage", "lost")}
        self.fired: list[Fault] = [f for f in self.plan if f.kind == "lacks"]
        self._dead: list[Host] = []
        self.failure: Violation | None = None
        self._ended = False
        self._trace: list[str] = []
        self._stuck: list[str] = []
        self.backend: Any = None

    # -- what the parts ask of the run --------------------------------------------------

    def datetime_at(self, seconds: float) -> datetime:
        """The wall-clock time `seconds` of virtual time after the start."""
        return EPOCH + timedelta(seconds=seconds)

    def db_clock(self) -> datetime:
        """The storage's clock: true virtual time."""
        return EPOCH + timedelta(seconds=self.loop.now)

    def trace(self, line: str) -> None:
        self._trace.append(f"{self.loop.now:.6f} {line}")

    def view(self, name: str) -> HostView:
        return self.views[name]

    def hosts_for_cancels(self) -> list[str]:
        return [*self.workers, "ops"]

    def storage_fault(self, host: Host, number: int) -> str | None:
        """The storage fault planned for this call, if any (none after the window)."""
        if self.loop.now >= self.window:
            return None
        fault = self._storage.pop((host.name, number), None)
        if fault is None:
            return None
        self.fired.append(fault)
        return fault.kind

    async def after_call(self, host: Host, name: str, summary: str, writes: bool) -> None:
        """Trace a backend call and check the events it appended (if it `writes`)."""
        self._trace.append(f"{self.loop.now:.6f} {host.name} {name} {summary}")
        if not writes:
            return
        try:
            self.checker.events(await self.backend.read_events(after_seq=self.checker.seen))
        except Violation as violation:
            self.fail(violation)

    def fail(self, violation: Violation) -> None:
        """Record the first violation and stop the run."""
        if self.failure is None:
            # Without its frames: they would keep the run's tasks alive after it.
            violation.__traceback__ = violation.__context__ = violation.__cause__ = None
            self.failure = violation
            self.trace(f"VIOLATION {violation}")
        if self.loop.is_running() and not self._ended:
            # Only the run itself stops: a stop left pending (called between runs, or
            # by a task still going while the log is read) would cut the next one short.
            self.loop.stop()

    # -- the fleet ----------------------------------------------------------------------

    def _host(self, name: str) -> HostView:
        host = self.hosts[name] = Host(name)
        view = self.views[name] = HostView(self.backend, host, self)
        return view

    async def _start_worker(self, name: str) -> None:
        view = self._host(name)
        adapter: QueueAdapter[Any] = QueueAdapter(cast(Backend, view))
        await register(adapter, name in self.lacking)
        tick = Schedule("tick", "* * * * *", Tick(seconds=0.2), tenant="t0")
        worker = self.worker_class(
            adapter,
            context=HostContext(view.host, self),
            concurrency=self.concurrency[name],
            lease_duration=LEASE,
            max_idle=timedelta(seconds=2),
            handle_signals=False,
            blocked_loop_warning=None,
            deploy_grace=timedelta(seconds=60),
            schedules=[tick],
        )
        task = self.loop.create_task(worker.run(), context=on_host(view.host))
        task.add_done_callback(self._worker_ended)
        self.worker_of[name] = (worker, task)
        self.trace(f"{name} started{' lacking sim.rare' if name in self.lacking else ''}")

    async def _apply_faults(self, operator: Operator) -> None:
        timed = sorted(f for f in self.plan if f.kind in ("kill", "pause", "skew", "cancels"))
        for fault in timed:
            await asyncio.sleep(max(0.0, fault.at - self.loop.now))
            host = self.hosts.get(fault.host)
            self.trace(f"fault {fault}")
            if fault.kind == "cancels":
                self.fired.append(fault)
                context = on_host(self.hosts[fault.host])
                self.loop.create_task(
                    operator.cancel_some(int(fault.arg), fault.host), context=context
                )
            elif host is None or host.dead:
                continue
            elif fault.kind == "kill":
                self.fired.append(fault)
                host.dead = True
                self._dead.append(host)
                self.loop.call_later(fault.arg, self._restart, fault.host)
            elif fault.kind == "pause":
                self.fired.append(fault)
                host.paused_until = max(host.paused_until, self.loop.now + fault.arg)
                self.checker.note_pause(host)
            else:
                self.fired.append(fault)
                host.set_rate(self.loop.now, fault.arg)

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            name = "escape" if isinstance(error, SimulationEscape) else "worker crashed"
            self.fail(Violation(name, f"Worker.run raised {error!r}"))

    def _restart(self, name: str) -> None:
        self.loop.create_task(self._start_worker(name), context=on_host(None))

    async def _monitor(self) -> None:
        ends = [f.at + f.arg for f in self.plan if f.kind in ("kill", "pause")]
        quiet = max([self.window, *ends]) + 1.0  # every host back at work
        ticks = 0
        while True:
            await asyncio.sleep(MONITOR_SECONDS)
            now, checker = self.loop.now, self.checker
            ticks += 1
            try:
                checker.overdue(now)
                if ticks % FOLD_EVERY == 0:
                    await self._check_fold(full=ticks % (FOLD_EVERY * FULL_FOLD_EVERY) == 0)
                if now < quiet:
                    continue
                missing = checker.missing()
                open_jobs = checker.unfinished(self.datetime_at(now - 30.0))
                if not open_jobs and not missing:
                    return
                if now > quiet + LIVENESS_SECONDS:
                    raise Violation("liveness", self._not_final(open_jobs, missing))
            except Violation as violation:
                self.fail(violation)
                return

    def _not_final(self, open_jobs: list[Any], missing: list[tuple[str, str]]) -> str:
        if missing:
            return f"{len(missing)} enqueues never committed, e.g. {missing[0]}"
        job = open_jobs[0]
        return (
            f"{len(open_jobs)} jobs not final {LIVENESS_SECONDS:g}s after the faults"
            f" stopped, e.g. {job.job_id} ({job.message.job_type}, {job.status},"
            f" attempts {job.attempts})"
        )

    async def _check_fold(self, *, full: bool) -> None:
        backend, checker = self.backend, self.checker
        if full:
            check_fold(await backend.read_events(), await backend.projected_jobs())
        else:
            checker.events(await backend.read_events(after_seq=checker.seen))
            check_projection(checker.jobs, await backend.projected_jobs())

    async def _main(self) -> None:
        self.backend = self.factory(clock=self.db_clock, config=CONFIG)
        seed_backend(self.backend, self.seed, self.db_clock)
        await self.backend.open()
        for name in self.workers:
            await self._start_worker(name)
        producer_view, ops_view = self._host("producer"), self._host("ops")
        producer = Producer(self, QueueAdapter(cast(Backend, producer_view)), self.produce_until)
        await register(producer.adapter, False)
        operator = Operator(self, self.window)
        loop = self.loop
        helpers = [
            loop.create_task(producer.run(), context=on_host(producer_view.host)),
            loop.create_task(operator.run(), context=on_host(ops_view.host)),
            loop.create_task(self._apply_faults(operator)),
        ]
        await self._monitor()
        for helper in helpers:
            helper.cancel()
        if self.failure is None:
            await self._stop_workers()

    async def _stop_workers(self) -> None:
        live = [
            (w, task) for name, (w, task) in self.worker_of.items() if not self.hosts[name].dead
        ]
        for worker, _ in live:
            worker.request_stop(timedelta(0))
        await asyncio.gather(*(task for _, task in live))
        self.checker.events(await self.backend.read_events(after_seq=self.checker.seen))
        await self._check_fold(full=True)

    def run(self) -> Outcome:
        """Run the fleet to its end or to its first violation."""
        guard = None
        if self.soak:
            loop: SimLoop | SoakLoop = SoakLoop()
        else:
            loop = SimLoop(random.Random(f"{self.seed}:scheduler"))
            guard = Guard(loop, random.Random(f"{self.seed}:escapes"))
        self.loop = loop
        self._ended = False
        loop.set_exception_handler(lambda _, context: None)  # leftovers of killed hosts
        log = b""
        with guarded(guard) if guard is not None else contextlib.nullcontext():
            try:
                loop.run_until_complete(self._main())
            except Violation as violation:
                self.fail(violation)
            except RuntimeError as error:  # stopped by a violation, or stalled
                if self.failure is None:
                    self.fail(
                        Violation(
                            "escape" if isinstance(error, SimulationEscape) else "stalled",
                            str(error),
                        )
                    )
            self._ended = True
            unexcused = [] if guard is None else guard.unexcused()
            if unexcused and self.failure is None:
                self.fail(Violation("escape", "; ".join(unexcused)))
            if self.backend is not None:
                log = self._encoded_log()
            self._teardown()
        if self.soak and (discard := getattr(self.factory, "discard", None)) is not None:
            discard(self.backend)
        return Outcome(
            seed=self.seed,
            fired=list(self.fired),
            failure=self.failure,
            trace=self._trace,
            log=log,
            lifecycles=self.checker.lifecycles,
            virtual_seconds=loop.now,
            steps=loop.steps,
            pending_escapes=[] if guard is None else guard.pending(),
            stuck=self._stuck,
        )

    def _encoded_log(self) -> bytes:
        """The whole log as it stands (read without running the seeded loop further)."""
        if isinstance(self.loop, SoakLoop):
            events = self.loop.run_until_complete(self.backend.read_events())
        else:
            reading = self.backend.read_events()
            try:
                reading.send(None)
            except StopIteration as done:
                events = done.value
            else:
                reading.close()
                raise SimulationEscape("the backend's read_events waits for I/O")
        return b"\n".join(msgspec.json.encode(event) for event in events)

    def _teardown(self) -> None:
        """Cancel and unwind every task left, those of killed hosts too."""
        loop = self.loop
        loop._stopping = False
        loop.max_steps = loop.steps + TEARDOWN_STEPS
        loop.revive(list(self.hosts.values()) + self._dead)
        for _ in range(TEARDOWN_ROUNDS):  # cancelling may start more tasks (releases)
            tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            if not self.soak:
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            elif not self._ended_in_time(tasks, "cancelled tasks"):
                break
        if not self.soak:
            with contextlib.suppress(BaseException):
                loop.run_until_complete(self.backend.close())
        else:
            closing = loop.create_task(self.backend.close(), name="teardown: backend.close")
            self._ended_in_time([closing], "the backend's close")
        if self._stuck and self.failure is None:
            # A task that outlives its cancellation, or a close that never ends, is a
            # bug wherever it is: the run fails with what was stuck.
            self.failure = Violation("stuck teardown", "\n".join(self._stuck))
        for task in asyncio.all_tasks(loop):  # stuck: close them while the loop is open
            with contextlib.suppress(BaseException):
                task.get_coro().close()
        loop.close()
        self.worker_of.clear()
        with warnings.catch_warnings():  # calls a killed host made and never awaited
            warnings.simplefilter("ignore", RuntimeWarning)
            gc.collect()

    def _ended_in_time(self, tasks: list[asyncio.Task[Any]], what: str) -> bool:
        """On the soak's loop: wait for `tasks` at most SOAK_TEARDOWN_SECONDS; whether
        they ended (if not, what is left on the loop goes into the report)."""
        loop = self.loop
        why = f"after {SOAK_TEARDOWN_SECONDS:g} s"
        waiting = asyncio.wait(tasks, timeout=SOAK_TEARDOWN_SECONDS)
        try:
            loop.run_until_complete(loop.create_task(waiting, name=_WAITS))
        except BaseException as error:  # the loop itself gave up (a livelock, say)
            why = f"when the loop stopped with {error!r}"
        if all(task.done() for task in tasks):
            return True
        left = [t for t in asyncio.all_tasks(loop) if not t.done() and t.get_name() != _WAITS]
        report = [
            f"{what} still going {why}; {len(left)} tasks left on the loop:",
            *describe_tasks(left),
            *describe_backend(self.backend),
        ]
        self._stuck.extend(report)
        self._trace.extend(f"{loop.now:.6f} STUCK {line}" for line in report)
        return False
