"""dogqueue on PostgreSQL beside the PostgreSQL queues people use, in one run, one server.

Systems, each in a fresh database on the same server, each in real processes:

- **bare**: a plain asyncpg queue loop, the physical reference: one jobs table, claims with
  `FOR UPDATE SKIP LOCKED`, enqueues and acks group-committed per process, no log.
- **procrastinate**: its real worker (concurrency 16), jobs deferred one call at a time.
- **pgqueuer**: its QueueManager in drain mode, jobs enqueued one call at a time.
- **dogqueue**: `PostgresBackend`; producers call `enqueue`, consumers call
  `dequeue_many(32)` and acknowledge each batch with one `settle_many` (as
  bench/compare.py does on SQLite).

Lifecycle: every process enqueues its share of N jobs from its producer tasks; once all
processes are done, every process consumes until the queue is empty. Latency: one process
enqueues jobs at a steady rate, the others (or one other) start them; enqueue->start is
taken from the wall-clock time the producer put in the payload. WAL bytes per job is the
`pg_current_wal_lsn()` advance over the lifecycle, after a CHECKPOINT.

    pip install -e '.[bench]'
    python bench/compare_pg.py                        # 20,000 jobs, 1 and 4 processes, 3 rounds
    python bench/compare_pg.py --jobs 2000 --repeat 1 --only bare,dogqueue
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import multiprocessing
import os
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg

if TYPE_CHECKING:
    from dogqueue.backend.postgres import PostgresBackend

RESULTS = Path(__file__).parent / "results"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SYSTEMS = ("bare", "procrastinate", "pgqueuer", "dogqueue")
#: Seconds a process waits at a barrier before the run is declared stuck.
BARRIER_TIMEOUT = 900.0
#: Seconds the latency producer waits after start so every consumer is listening.
LATENCY_WARMUP = 1.0

#: Records that job `number` started, `delay` seconds after it was enqueued.
Record = Callable[[int, float], None]
#: True once the consumers may stop waiting for new jobs.
Stop = Callable[[], bool]


@dataclass
class Settings:
    """The workload every system runs."""

    dsn: str = DEFAULT_DSN
    jobs: int = 20_000
    #: Producer tasks and consumer tasks per process (procrastinate: worker concurrency).
    tasks: int = 16
    #: Jobs leased per call (dogqueue dequeue_many, bare claim, pgqueuer batch_size).
    lease_batch: int = 32
    #: Jobs enqueued at a steady rate for the enqueue->start latency; 0 skips it.
    latency_jobs: int = 200
    latency_rate: float = 25.0
    #: Jobs per enqueue call: 1 is one call per job; more is the bulk shape (PgQueuer's
    #: best: lists of 100, consumers fetching batches of --lease-batch).
    enqueue_batch: int = 1


def payload(number: int) -> bytes:
    """A job's body: its number and the wall-clock time it was enqueued."""
    return json.dumps({"n": number, "t": time.time()}).encode()


def started(body: bytes | str, record: Record) -> None:
    """Record a job's start from its body."""
    fields = json.loads(body)
    record(int(fields["n"]), time.time() - float(fields["t"]))


class Queue(Protocol):
    """One process's handle on a system, opened inside the process that uses it."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def enqueue(self, number: int) -> None:
        """Enqueue one job; called concurrently by the producer tasks."""
        ...

    async def enqueue_many(self, numbers: Sequence[int]) -> None:
        """Enqueue a list of jobs in one call, all or none (the bulk shape)."""
        ...

    async def drain(self, record: Record) -> None:
        """Start jobs with the consumer tasks until the queue is empty."""
        ...

    async def serve(self, record: Record, stop: Stop) -> None:
        """Start jobs as they arrive, woken by the system's own mechanism, until `stop()`."""
        ...


@dataclass
class System:
    """How to install, open and check one system."""

    name: str
    #: Modules that must import for the system to run; a missing one skips it.
    needs: tuple[str, ...]
    install: Callable[[str], Coroutine[Any, Any, None]]
    open: Callable[[str, Settings], Queue]
    #: Jobs the database holds as completed (after the lifecycle).
    completed: Callable[[str], Coroutine[Any, Any, int]]


async def until(stop: Stop, running: asyncio.Task[None]) -> None:
    """Return once `stop()` is true or `running` has ended."""
    while not stop() and not running.done():
        await asyncio.wait([running], timeout=0.05)


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def counter(query: str) -> Callable[[str], Coroutine[Any, Any, int]]:
    """A `System.completed` that runs one count query."""

    async def count(dsn: str) -> int:
        conn = await asyncpg.connect(dsn)
        try:
            found: int = await conn.fetchval(query)
            return found
        finally:
            await conn.close()

    return count


# -- bare asyncpg loop ------------------------------------------------------------------


class GroupCommit:
    """Calls made while a flush is in flight go together in the next one."""

    def __init__(self, flush: Callable[[list[Any]], Awaitable[None]]) -> None:
        self.flush = flush
        self.pending: list[tuple[Any, asyncio.Future[None]]] = []
        self.flushing = False

    async def submit(self, item: Any) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((item, done))
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().create_task(self._run())
        await done

    async def _run(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await self.flush([item for item, _ in batch])
                except Exception as error:
                    for _, done in batch:
                        done.set_exception(error)
                else:
                    for _, done in batch:
                        done.set_result(None)
        finally:
            self.flushing = False


BARE_SCHEMA = """
CREATE TABLE bare_jobs (
    id bigserial PRIMARY KEY,
    status smallint NOT NULL DEFAULT 0,  -- 0 ready, 1 running, 2 done
    payload bytea NOT NULL
);
CREATE INDEX bare_jobs_ready ON bare_jobs (id) WHERE status = 0;
"""
BARE_ENQUEUE = """
WITH added AS (INSERT INTO bare_jobs (payload) SELECT unnest($1::bytea[]) RETURNING id)
SELECT pg_notify('bare_jobs', '') FROM (SELECT count(*) FROM added) AS counted
"""
BARE_CLAIM = """
UPDATE bare_jobs SET status = 1 WHERE id IN (
    SELECT id FROM bare_jobs WHERE status = 0 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
) RETURNING id, payload
"""
BARE_ACK = "UPDATE bare_jobs SET status = 2 WHERE id = ANY($1::bigint[])"


class ClaimingQueue:
    """Consumer tasks that claim a batch, start each job and acknowledge it; shared by
    the two systems driven through their own calls (bare, dogqueue)."""

    settings: Settings

    async def claim(self) -> list[tuple[bytes, Any]]:
        """Claim up to `lease_batch` jobs: (body, what `ack` needs) each."""
        raise NotImplementedError

    async def ack(self, handle: Any) -> None:
        """Mark one claimed job done."""
        raise NotImplementedError

    async def ack_all(self, handles: list[Any]) -> None:
        """Mark a claimed batch done (by default one `ack` each, concurrently)."""
        await asyncio.gather(*(self.ack(handle) for handle in handles))

    async def idle(self) -> None:
        """Wait until new work may be there (at most a short while)."""
        raise NotImplementedError

    async def _consume(self, record: Record, stop: Stop | None) -> None:
        while True:
            claimed = await self.claim()
            if not claimed:
                if stop is None or stop():
                    return
                await self.idle()
                continue
            for body, _ in claimed:
                started(body, record)
            await self.ack_all([handle for _, handle in claimed])

    async def drain(self, record: Record) -> None:
        await asyncio.gather(*(self._consume(record, None) for _ in range(self.settings.tasks)))

    async def serve(self, record: Record, stop: Stop) -> None:
        await asyncio.gather(*(self._consume(record, stop) for _ in range(self.settings.tasks)))


class BareQueue(ClaimingQueue):
    """The reference loop: a pool, one group commit for enqueues and one for acks."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings
        self.enqueues = GroupCommit(self._insert)
        self.acks = GroupCommit(self._ack)
        self.woken = asyncio.Event()

    async def __aenter__(self) -> Self:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=8)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()

    async def _insert(self, bodies: list[bytes]) -> None:
        await self.pool.execute(BARE_ENQUEUE, bodies)

    async def _ack(self, ids: list[int]) -> None:
        await self.pool.execute(BARE_ACK, ids)

    async def enqueue(self, number: int) -> None:
        await self.enqueues.submit(payload(number))

    async def enqueue_many(self, numbers: Sequence[int]) -> None:
        await self._insert([payload(number) for number in numbers])

    async def claim(self) -> list[tuple[bytes, Any]]:
        self.woken.clear()  # a NOTIFY from now on wakes `idle`
        rows = await self.pool.fetch(BARE_CLAIM, self.settings.lease_batch)
        return [(row["payload"], row["id"]) for row in rows]

    async def ack(self, handle: Any) -> None:
        await self.acks.submit(handle)

    async def idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), 0.2)

    async def serve(self, record: Record, stop: Stop) -> None:
        def wake(*_: object) -> None:
            self.woken.set()

        async with self.pool.acquire() as listener:
            await listener.add_listener("bare_jobs", wake)
            try:
                await super().serve(record, stop)
            finally:
                await listener.remove_listener("bare_jobs", wake)


# -- procrastinate ----------------------------------------------------------------------

PROCRASTINATE_QUEUE = "bench"


def _procrastinate_app(dsn: str) -> Any:
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn, max_size=10))


async def procrastinate_install(dsn: str) -> None:
    app = _procrastinate_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


class ProcrastinateQueue:
    """procrastinate's App: `defer_async` per job, its Worker to run them."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.settings = settings
        self.app = _procrastinate_app(dsn)
        self.record: Record = lambda number, delay: None

        async def bench_job(n: int, t: float) -> None:
            self.record(n, time.time() - t)

        self.task = self.app.task(name="bench_job", queue=PROCRASTINATE_QUEUE)(bench_job)

    async def __aenter__(self) -> Self:
        self.opened = self.app.open_async()
        await self.opened.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.opened.__aexit__(None, None, None)

    async def enqueue(self, number: int) -> None:
        await self.task.defer_async(n=number, t=time.time())

    async def enqueue_many(self, numbers: Sequence[int]) -> None:
        now = time.time()
        await self.task.batch_defer_async(*({"n": number, "t": now} for number in numbers))

    def _worker(self, wait: bool) -> Any:
        from procrastinate.worker import Worker

        return Worker(
            self.app,
            queues=[PROCRASTINATE_QUEUE],
            concurrency=self.settings.tasks,
            wait=wait,
            install_signal_handlers=False,
        )

    async def drain(self, record: Record) -> None:
        self.record = record
        await self._worker(wait=False).run()

    async def serve(self, record: Record, stop: Stop) -> None:
        self.record = record
        worker = self._worker(wait=True)
        running = asyncio.create_task(worker.run())
        await until(stop, running)
        worker.stop()
        await running


# -- PgQueuer ---------------------------------------------------------------------------

PGQUEUER_ENTRYPOINT = "bench_job"


async def pgqueuer_install(dsn: str) -> None:
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(dsn)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


class PgQueuerQueue:
    """PgQueuer: `Queries.enqueue` per job on a pool, a QueueManager to run them."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings

    async def __aenter__(self) -> Self:
        from pgqueuer import AsyncpgPoolDriver, Queries

        self.pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=8)
        self.queries = Queries(AsyncpgPoolDriver(self.pool))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()

    async def enqueue(self, number: int) -> None:
        await self.queries.enqueue(PGQUEUER_ENTRYPOINT, payload(number), 0)

    async def enqueue_many(self, numbers: Sequence[int]) -> None:
        count = len(numbers)
        bodies: list[bytes | None] = [payload(number) for number in numbers]
        await self.queries.enqueue([PGQUEUER_ENTRYPOINT] * count, bodies, [0] * count)

    async def _run(self, record: Record, stop: Stop | None) -> None:
        from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
        from pgqueuer.domain.types import QueueExecutionMode

        conn = await asyncpg.connect(self.dsn)
        try:
            manager = QueueManager(Queries(AsyncpgDriver(conn)))

            @manager.entrypoint(PGQUEUER_ENTRYPOINT)  # type: ignore[untyped-decorator,unused-ignore]
            async def bench_job(job: Job) -> None:
                assert job.payload is not None
                started(job.payload, record)

            mode = QueueExecutionMode.drain if stop is None else QueueExecutionMode.continuous
            running = asyncio.create_task(
                manager.run(
                    batch_size=self.settings.lease_batch,
                    mode=mode,
                    dequeue_timeout=timedelta(seconds=1),
                )
            )
            if stop is not None:
                await until(stop, running)
                manager.shutdown.set()
            await running
        finally:
            await conn.close()

    async def drain(self, record: Record) -> None:
        await self._run(record, None)

    async def serve(self, record: Record, stop: Stop) -> None:
        await self._run(record, stop)


# -- dogqueue ---------------------------------------------------------------------------

DOGQUEUE_QUEUES = ["default"]


def _postgres_backend(dsn: str) -> PostgresBackend:
    # Imported where used: asyncpg is an optional extra, and --only must work without it.
    from dogqueue.backend.postgres import PostgresBackend

    return PostgresBackend(dsn)


async def dogqueue_install(dsn: str) -> None:
    async with _postgres_backend(dsn):
        pass


async def dogqueue_completed(dsn: str) -> int:
    async with _postgres_backend(dsn) as backend:
        jobs = await backend.projected_jobs()
        return sum(1 for job in jobs.values() if job.status == "completed")


class DogqueueQueue(ClaimingQueue):
    """dogqueue's PostgresBackend through its public contract."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        from dogqueue import QueueCtx

        self.settings = settings
        self.backend = _postgres_backend(dsn)
        self.ctx = QueueCtx("tenant-1")

    async def __aenter__(self) -> Self:
        await self.backend.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.backend.close()

    async def enqueue(self, number: int) -> None:
        from dogqueue import JobMessage

        message = JobMessage(job_type="bench_job", payload_bytes=payload(number))
        await self.backend.enqueue(self.ctx, message)

    async def enqueue_many(self, numbers: Sequence[int]) -> None:
        from dogqueue import JobMessage

        messages = [JobMessage(job_type="bench_job", payload_bytes=payload(n)) for n in numbers]
        await self.backend.enqueue_many(self.ctx, messages)

    async def claim(self) -> list[tuple[bytes, Any]]:
        batch = self.settings.lease_batch
        leases = await self.backend.dequeue_many(self.ctx, DOGQUEUE_QUEUES, batch)
        return [(lease.message.payload_bytes, lease) for lease in leases]

    async def ack(self, handle: Any) -> None:
        await self.backend.ack_complete(self.ctx, handle)

    async def ack_all(self, handles: list[Any]) -> None:
        from dogqueue import Completion

        await self.backend.settle_many(self.ctx, [Completion(lease=lease) for lease in handles])

    async def idle(self) -> None:
        await self.backend.wait_for_change(0.2)


SYSTEM_TABLE: dict[str, System] = {
    "bare": System(
        "bare",
        ("asyncpg",),
        partial(_admin, statement=BARE_SCHEMA),
        BareQueue,
        counter("SELECT count(*) FROM bare_jobs WHERE status = 2"),
    ),
    "procrastinate": System(
        "procrastinate",
        ("procrastinate", "psycopg"),
        procrastinate_install,
        ProcrastinateQueue,
        counter("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"),
    ),
    "pgqueuer": System(
        "pgqueuer",
        ("pgqueuer",),
        pgqueuer_install,
        PgQueuerQueue,
        counter("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"),
    ),
    "dogqueue": System(
        "dogqueue",
        ("dogqueue.backend.postgres",),
        dogqueue_install,
        DogqueueQueue,
        dogqueue_completed,
    ),
}


def missing(name: str) -> str | None:
    """Why the system cannot run here, or None if it can."""
    for module in SYSTEM_TABLE[name].needs:
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"{module} is not importable"
    return None


# -- one process ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one process reports back."""

    #: (job number, enqueue->start seconds) of every job this process started.
    started: list[tuple[int, float]] = field(default_factory=list)
    #: Wall-clock time its last job finished.
    finished: float = 0.0


async def produce(queue: Queue, numbers: Sequence[int], tasks: int, batch: int = 1) -> None:
    """Enqueue `numbers` from `tasks` concurrent producers, `batch` jobs per call."""

    async def producer(mine: Sequence[int]) -> None:
        if batch > 1:
            for offset in range(0, len(mine), batch):
                await queue.enqueue_many(mine[offset : offset + batch])
            return
        for number in mine:
            await queue.enqueue(number)

    await asyncio.gather(*(producer(numbers[offset::tasks]) for offset in range(tasks)))


async def _lifecycle(
    system: System, dsn: str, settings: Settings, numbers: list[int], barrier: Any
) -> Outcome:
    outcome = Outcome()
    async with system.open(dsn, settings) as queue:
        await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)  # everyone open
        await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)  # WAL position taken: go
        await produce(queue, numbers, settings.tasks, settings.enqueue_batch)
        await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)  # everyone enqueued: consume
        await queue.drain(lambda number, delay: outcome.started.append((number, delay)))
        outcome.finished = time.time()
    return outcome


async def _latency_producer(system: System, dsn: str, settings: Settings, barrier: Any) -> Outcome:
    async with system.open(dsn, settings) as queue:
        await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)
        await asyncio.sleep(LATENCY_WARMUP)
        start, gap = time.perf_counter(), 1.0 / settings.latency_rate
        for number in range(settings.latency_jobs):
            await queue.enqueue(number)
            await asyncio.sleep(max(0.0, start + (number + 1) * gap - time.perf_counter()))
    return Outcome(finished=time.time())


async def _latency_consumer(
    system: System, dsn: str, settings: Settings, barrier: Any, seen: Any
) -> Outcome:
    outcome = Outcome()

    def record(number: int, delay: float) -> None:
        outcome.started.append((number, delay))
        with seen.get_lock():
            seen.value += 1

    async with system.open(dsn, settings) as queue:
        serving = asyncio.create_task(
            queue.serve(record, lambda: seen.value >= settings.latency_jobs)
        )
        await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)
        await serving
        outcome.finished = time.time()
    return outcome


def child(
    name: str,
    role: str,
    dsn: str,
    settings: Settings,
    numbers: list[int],
    barrier: Any,
    seen: Any,
    results: Any,
) -> None:
    """A process's body: run its role, send its Outcome (or the error) to the parent."""
    system = SYSTEM_TABLE[name]
    try:
        if role == "lifecycle":
            work = _lifecycle(system, dsn, settings, numbers, barrier)
        elif role == "latency-producer":
            work = _latency_producer(system, dsn, settings, barrier)
        else:
            work = _latency_consumer(system, dsn, settings, barrier, seen)
        results.put(("ok", asdict(asyncio.run(work))))
    except BaseException:
        barrier.abort()
        results.put(("error", f"{name} {role}:\n{traceback.format_exc()}"))


# -- the parent -------------------------------------------------------------------------


@dataclass
class Measurement:
    """One system, one process count, one round."""

    system: str
    processes: int
    jobs: int
    lifecycle_per_s: float
    enqueue_per_s: float
    #: The server's WAL position advance over the lifecycle, per job (every database).
    wal_bytes_per_job: float
    #: Of it, the records of this run's database and its transactions (pg_walinspect),
    #: or None where that extension is missing.
    own_wal_bytes_per_job: float | None
    #: Every enqueue->start delay of the latency phase, in seconds.
    latencies: list[float]
    #: Jobs started once / more than once / never, and completed per the database.
    started_once: int
    started_twice: int
    never_started: int
    completed_in_db: int


def database_dsn(dsn: str, database: str) -> str:
    """`dsn` pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def split(numbers: list[int], parts: int) -> list[list[int]]:
    return [numbers[index::parts] for index in range(parts)]


class Processes:
    """Spawned children sharing a barrier with the parent and a results queue."""

    def __init__(self, count: int) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.barrier = self.context.Barrier(count + 1)
        self.seen = self.context.Value("i", 0)
        self.results = self.context.Queue()
        self.children: list[Any] = []
        self.count = count

    def start(self, name: str, role: str, dsn: str, settings: Settings, numbers: list[int]) -> None:
        arguments = (name, role, dsn, settings, numbers, self.barrier, self.seen, self.results)
        process = self.context.Process(target=child, args=arguments, daemon=True)
        process.start()
        self.children.append(process)

    def wait(self) -> None:
        """Pass the barrier with the children (raises if one of them failed)."""
        try:
            self.barrier.wait(BARRIER_TIMEOUT)
        except Exception:
            self.collect()  # raises the child's error
            raise

    def collect(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        errors: list[str] = []
        for _ in self.children:
            status, body = self.results.get(timeout=BARRIER_TIMEOUT)
            if status == "ok":
                body["started"] = [tuple(pair) for pair in body["started"]]
                outcomes.append(Outcome(**body))
            else:
                errors.append(body)
        for process in self.children:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        if errors:
            raise RuntimeError("\n".join(errors))
        return outcomes


#: WAL bytes between two positions written for one database: records touching its
#: relations, and every record (commits included) of a transaction that touched them.
OWN_WAL = """
WITH records AS (
    SELECT xid, record_length, block_ref LIKE $3 AS here
    FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)
), writers AS (SELECT DISTINCT xid FROM records WHERE here AND xid <> '0')
SELECT coalesce(sum(record_length), 0)::bigint FROM records
WHERE here OR xid IN (SELECT xid FROM writers)
"""


async def _wal_position(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        position: str = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        return position
    finally:
        await conn.close()


async def _wal_between(dsn: str, before: str, after: str) -> tuple[int, int | None]:
    """The WAL bytes written between two positions: by the server, and for this database."""
    conn = await asyncpg.connect(dsn)
    try:
        total: int = await conn.fetchval(
            "SELECT pg_wal_lsn_diff($2::text::pg_lsn, $1::text::pg_lsn)::bigint", before, after
        )
        try:
            here = await conn.fetchval(
                "SELECT oid FROM pg_database WHERE datname = current_database()"
            )
            own: int | None = await conn.fetchval(OWN_WAL, before, after, f"%/{here}/%")
        except asyncpg.PostgresError:
            own = None  # no pg_walinspect, or the segments were already recycled
        return total, own
    finally:
        await conn.close()


def measure(name: str, processes: int, settings: Settings) -> Measurement:
    """Run one system in a fresh database: the lifecycle in `processes` processes, then
    the latency phase; check that every job was started and completed exactly once."""
    system = SYSTEM_TABLE[name]
    database = f"dogqueue_bench_{name}_{os.getpid()}"
    dsn = database_dsn(settings.dsn, database)
    asyncio.run(_admin(settings.dsn, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
    asyncio.run(_admin(settings.dsn, f"CREATE DATABASE {database}"))
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            asyncio.run(_admin(dsn, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"))
        asyncio.run(system.install(dsn))
        lifecycle = _measure_lifecycle(system, dsn, processes, settings)
        lifecycle.latencies = _measure_latency(system, dsn, processes, settings)
        return lifecycle
    finally:
        asyncio.run(_admin(settings.dsn, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


def _measure_lifecycle(system: System, dsn: str, processes: int, settings: Settings) -> Measurement:
    group = Processes(processes)
    for share in split(list(range(settings.jobs)), processes):
        group.start(system.name, "lifecycle", dsn, settings, share)
    group.wait()  # every process has opened its queue
    asyncio.run(_admin(dsn, "CHECKPOINT"))
    wal_before = asyncio.run(_wal_position(dsn))
    group.wait()  # go
    start = time.time()
    group.wait()  # every job is enqueued
    enqueued = time.time()
    outcomes = group.collect()
    finished = max(outcome.finished for outcome in outcomes)
    wal, own_wal = asyncio.run(_wal_between(dsn, wal_before, asyncio.run(_wal_position(dsn))))

    counts: dict[int, int] = {}
    for outcome in outcomes:
        for number, _ in outcome.started:
            counts[number] = counts.get(number, 0) + 1
    return Measurement(
        system=system.name,
        processes=processes,
        jobs=settings.jobs,
        lifecycle_per_s=settings.jobs / (finished - start),
        enqueue_per_s=settings.jobs / (enqueued - start),
        wal_bytes_per_job=wal / settings.jobs,
        own_wal_bytes_per_job=None if own_wal is None else own_wal / settings.jobs,
        latencies=[],
        started_once=sum(1 for count in counts.values() if count == 1),
        started_twice=sum(1 for count in counts.values() if count > 1),
        never_started=sum(1 for number in range(settings.jobs) if number not in counts),
        completed_in_db=asyncio.run(system.completed(dsn)),
    )


def _measure_latency(system: System, dsn: str, processes: int, settings: Settings) -> list[float]:
    if settings.latency_jobs == 0:
        return []
    consumers = max(1, processes - 1)
    group = Processes(consumers + 1)
    group.start(system.name, "latency-producer", dsn, settings, [])
    for _ in range(consumers):
        group.start(system.name, "latency-consumer", dsn, settings, [])
    group.wait()
    return [delay for outcome in group.collect() for _, delay in outcome.started]


# -- report -----------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


LABELS = {
    "bare": "bare asyncpg loop, {enqueue}, no log (physical reference)",
    "procrastinate": "procrastinate (worker concurrency {tasks}, {enqueue})",
    "pgqueuer": "PgQueuer (QueueManager drain, batch {batch}, {enqueue})",
    "dogqueue": "dogqueue PostgresBackend ({enqueue}; dequeue_many({batch}) + settle_many)",
}
#: How each system enqueues in the bulk shape (--enqueue-batch N > 1).
BULK_ENQUEUE = {
    "bare": "one INSERT per list",
    "procrastinate": "batch_defer_async",
    "pgqueuer": "Queries.enqueue of a list",
    "dogqueue": "enqueue_many",
}


def label(name: str, settings: Settings) -> str:
    """The table's name for a system in this workload's shape."""
    if settings.enqueue_batch > 1:
        enqueue = f"{BULK_ENQUEUE[name]}, lists of {settings.enqueue_batch}"
    else:
        enqueue = {
            "bare": "group commit",
            "procrastinate": "defer one by one",
            "dogqueue": "enqueue",
        }.get(name, "enqueue one by one")
    return LABELS[name].format(tasks=settings.tasks, batch=settings.lease_batch, enqueue=enqueue)


def _cell(values: Sequence[float | None], fmt: str = ",.0f") -> str:
    """The median of the known values, and their range when there are several."""
    known = [value for value in values if value is not None]
    if not known:
        return ""
    middle = statistics.median(known)
    if len(known) < 2:
        return format(middle, fmt)
    return f"{format(middle, fmt)} ({format(min(known), fmt)} to {format(max(known), fmt)})"


def ratios(rounds: list[list[Measurement]], processes: int, peer: str) -> list[float]:
    """dogqueue's lifecycle over `peer`'s, within each round that measured both."""
    found = []
    for measured in rounds:
        here = {m.system: m for m in measured if m.processes == processes}
        if "dogqueue" in here and peer in here:
            found.append(here["dogqueue"].lifecycle_per_s / here[peer].lifecycle_per_s)
    return found


def table(rounds: list[list[Measurement]], settings: Settings) -> str:
    """Markdown: one row per (processes, system), then dogqueue's same-round ratios."""
    by_key: dict[tuple[int, str], list[Measurement]] = {}
    for measured in rounds:
        for m in measured:
            by_key.setdefault((m.processes, m.system), []).append(m)
    lines = [
        "| processes | system | lifecycle jobs/s | enqueue jobs/s | enqueue->start ms p50 / p99"
        " | WAL bytes/job: server / this database | dogqueue / it (same round) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    ordered = sorted(by_key.items(), key=lambda item: (item[0][0], SYSTEMS.index(item[0][1])))
    for (processes, name), found in ordered:
        delays = [delay for m in found for delay in m.latencies]
        latency = (
            f"{percentile(delays, 0.5) * 1e3:.1f} / {percentile(delays, 0.99) * 1e3:.1f}"
            if delays
            else ""
        )
        wal = _cell([m.wal_bytes_per_job for m in found]).split(" (")[0]
        own = _cell([m.own_wal_bytes_per_job for m in found]).split(" (")[0] or "?"
        ratio = _cell(ratios(rounds, processes, name), ".2f") if name != "dogqueue" else ""
        named = label(name, settings)
        if found[0].jobs != settings.jobs:
            named += f", {found[0].jobs:,} jobs"
        lines.append(
            f"| {processes} | {named} | {_cell([m.lifecycle_per_s for m in found])}"
            f" | {_cell([m.enqueue_per_s for m in found])} | {latency} | {wal} / {own}"
            f" | {ratio} |"
        )
    summary = []
    for processes in sorted({processes for processes, _ in by_key}):
        for peer in SYSTEMS[:-1]:
            found_ratios = ratios(rounds, processes, peer)
            if found_ratios:
                each = ", ".join(f"{ratio:.2f}" for ratio in found_ratios)
                summary.append(f"- {processes} process(es), dogqueue / {peer}: {each}")
    if summary:
        lines += ["", "Lifecycle ratios, each within one round:", "", *summary]
    return "\n".join(lines)


def check(measurement: Measurement) -> None:
    """Raise unless every job was started once and completed once."""
    m = measurement
    if (
        m.started_once != m.jobs
        or m.started_twice
        or m.never_started
        or m.completed_in_db != m.jobs
    ):
        raise RuntimeError(
            f"{m.system} x{m.processes}: {m.started_once} started once, {m.started_twice} more"
            f" than once, {m.never_started} never; {m.completed_in_db} of {m.jobs} completed"
        )


def _save(out: Path, command: str, settings: Settings, rounds: list[list[Measurement]]) -> None:
    """Write the JSON of every measurement so far, and the Markdown table."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    saved = {
        "when": stamp,
        "command": command,
        "settings": asdict(settings) | {"dsn": "(local)"},
        "rounds": [[asdict(m) for m in measured] for measured in rounds],
    }
    (out / "compare_pg.json").write_text(json.dumps(saved, indent=1))
    header = (
        f"Run {stamp}: `{command}`\n\nWorkload: {saved['settings']}; lifecycle is the median of"
        f" {len(rounds)} round(s), min to max in brackets; latencies pool every round.\n\n"
    )
    (out / "compare_pg.md").write_text(header + table(rounds, settings) + "\n")


def replot(path: Path) -> str:
    """The table of a saved run."""
    saved = json.loads(path.read_text())
    settings = Settings(**saved["settings"])
    rounds = [[Measurement(**found) for found in measured] for measured in saved["rounds"]]
    return table(rounds, settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="a database to connect to first")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument(
        "--jobs-for",
        action="append",
        default=[],
        metavar="SYSTEM=N",
        help="another job count for one system (a slow peer); the table names it",
    )
    parser.add_argument("--processes", default="1,4", help="process counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--only", default=",".join(SYSTEMS), help="systems, comma-separated")
    parser.add_argument("--tasks", type=int, default=16, help="producer/consumer tasks")
    parser.add_argument("--lease-batch", type=int, default=32)
    parser.add_argument(
        "--enqueue-batch",
        type=int,
        default=1,
        help="jobs per enqueue call (the bulk shape: --enqueue-batch 100 --lease-batch 100)",
    )
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--latency-rate", type=float, default=25.0, help="jobs/s")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replot", type=Path, help="print the table of a saved JSON")
    args = parser.parse_args(argv)
    if args.replot:
        print(replot(args.replot))
        return 0
    settings = Settings(
        dsn=args.dsn,
        jobs=args.jobs,
        tasks=args.tasks,
        lease_batch=args.lease_batch,
        latency_jobs=args.latency_jobs,
        latency_rate=args.latency_rate,
        enqueue_batch=args.enqueue_batch,
    )
    counts = [int(count) for count in args.processes.split(",")]
    jobs_for = {name: int(count) for name, count in (s.split("=") for s in args.jobs_for)}
    names = []
    for name in args.only.split(","):
        if name not in SYSTEM_TABLE:
            parser.error(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
        reason = missing(name)
        if reason:
            print(f"skipping {name}: {reason}", flush=True)
        else:
            names.append(name)

    command = " ".join(["python bench/compare_pg.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"workload: {asdict(settings)}, processes {counts}, jobs for {jobs_for}", flush=True)
    rounds: list[list[Measurement]] = []
    for repetition in range(1, args.repeat + 1):
        print(f"round {repetition} of {args.repeat}", flush=True)
        rounds.append([])
        for processes in counts:
            for name in names:  # interleaved, so drift in the machine hits every system
                workload = replace(settings, jobs=jobs_for.get(name, settings.jobs))
                m = measure(name, processes, workload)
                check(m)
                p99 = f"{percentile(m.latencies, 0.99) * 1e3:.1f}" if m.latencies else "-"
                print(
                    f"  {name:13} x{processes}  lifecycle {m.lifecycle_per_s:8,.0f} jobs/s"
                    f"  enqueue {m.enqueue_per_s:8,.0f} jobs/s  WAL {m.wal_bytes_per_job:6,.0f}"
                    f" B/job ({m.own_wal_bytes_per_job or 0:6,.0f} own)  latency p99 {p99} ms",
                    flush=True,
                )
                rounds[-1].append(m)
                _save(args.out, command, settings, rounds)

    print()
    print(table(rounds, settings))
    print(f"\nwrote {args.out / 'compare_pg.md'} and compare_pg.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
