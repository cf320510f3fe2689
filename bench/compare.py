"""dogqueue beside the SQLite queues people use today, on one machine, in one run.

Every library runs the same workload in its own fresh process, on a file database in a
temporary directory: N small jobs enqueued by concurrent producers, then leased and
acknowledged by concurrent consumers. The physical limit (plain sqlite3 `executemany`
of the rows dogqueue writes per job) is measured in the same run. Results go to
bench/results/ as a Markdown table, a JSON file and a PNG chart.

    pip install -e '.[bench]'
    python bench/compare.py               # 20,000 jobs, every library
    python bench/compare.py --jobs 2000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

RESULTS = Path(__file__).parent / "results"
PAYLOAD = b'{"user_id": 12345, "action": "send_welcome_email"}'
#: Rows dogqueue writes per job lifecycle: 3 events (enqueued, leased, completed) and
#: its projection row written 3 times (insert, then 2 updates).
ROWS_PER_JOB = 6
#: Sequential enqueues timed for the unloaded latency.
UNLOADED_SAMPLES = 2_000
#: Jobs the end-to-end `Worker` row runs at once.
WORKER_CONCURRENCY = 256


@dataclass
class Workload:
    jobs: int
    producers: int
    consumers: int
    lease_batch: int


@dataclass
class Result:
    name: str
    durability: str
    enqueue_per_s: float
    lifecycle_per_s: float
    #: Latency of one enqueue while all producers run (ms).
    loaded_p50_ms: float
    loaded_p99_ms: float
    #: Latency of one enqueue with nothing else running (ms).
    unloaded_p50_ms: float
    unloaded_p99_ms: float
    peak_rss_mib: float
    settings: dict[str, Any] = field(default_factory=dict)
    #: Lifecycle jobs/s of every repetition (this result is the median one).
    lifecycle_runs: list[float] = field(default_factory=list)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pragmas(path: str) -> dict[str, Any]:
    """The durability settings a fresh connection to `path` reports."""
    conn = sqlite3.connect(path)
    try:
        return {"journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0]}
    finally:
        conn.close()


def _pragma(conn: Any, name: str) -> Any:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# -- dogqueue ---------------------------------------------------------------------------


def run_dogqueue(folder: Path, work: Workload, durability: str) -> Result:
    from dogqueue import Completion, JobMessage, QueueCtx
    from dogqueue.backend.sqlite import SqliteBackend

    synchronous: Literal["NORMAL", "FULL"] = "FULL" if durability == "FULL" else "NORMAL"

    ctx = QueueCtx("tenant-1")
    message = JobMessage(job_type="send_email", payload_bytes=PAYLOAD)

    async def unloaded() -> list[float]:
        async with SqliteBackend(folder / "unloaded.db", synchronous=synchronous) as backend:
            samples = []
            for _ in range(UNLOADED_SAMPLES):
                start = time.perf_counter()
                await backend.enqueue(ctx, message)
                samples.append(time.perf_counter() - start)
            return samples

    async def lifecycle() -> tuple[float, float, list[float], dict[str, Any]]:
        async with SqliteBackend(folder / "queue.db", synchronous=synchronous) as backend:

            async def consume() -> None:
                while leases := await backend.dequeue_many(ctx, ["default"], work.lease_batch):
                    await backend.settle_many(ctx, [Completion(lease=lease) for lease in leases])

            start = time.perf_counter()
            latencies = await _enqueue_all(backend, ctx, message, work)
            enqueued = time.perf_counter()
            await asyncio.gather(*(consume() for _ in range(work.consumers)))
            done = time.perf_counter()
            settings = {
                "journal_mode": "wal",
                "synchronous": synchronous,
                "commits": backend.writer.commits,
                "units_per_commit": round(backend.writer.units / max(backend.writer.commits, 1)),
            }
            return enqueued - start, done - start, latencies, settings

    quiet = asyncio.run(unloaded())
    enqueue_s, total_s, loaded, settings = asyncio.run(lifecycle())
    settings["bytes_per_job"] = _bytes_per_job(folder / "queue.db", work.jobs)
    return _result("dogqueue", durability, work, enqueue_s, total_s, loaded, quiet, settings)


async def _enqueue_all(backend: Any, ctx: Any, message: Any, work: Workload) -> list[float]:
    """Enqueue the workload's jobs from `producers` concurrent tasks; the latency of
    each call."""
    latencies: list[float] = []

    async def produce(count: int) -> None:
        for _ in range(count):
            began = time.perf_counter()
            await backend.enqueue(ctx, message)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(produce(n) for n in _split(work.jobs, work.producers)))
    return latencies


def _bytes_per_job(path: Path, jobs: int) -> int:
    """The database's size on disk after the lifecycle (log, projection and indexes of
    every finished job; the WAL checkpointed), per job."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return round(path.stat().st_size / jobs)


def run_dogqueue_worker(folder: Path, work: Workload, durability: str) -> Result:
    """The real `Worker` (concurrency `WORKER_CONCURRENCY`) running no-op jobs: the
    jobs are enqueued first, as in the lifecycle row, then the worker runs them all."""
    from dogqueue import Job, JobMessage, QueueAdapter, QueueCtx, Worker
    from dogqueue.backend.sqlite import SqliteBackend

    synchronous: Literal["NORMAL", "FULL"] = "FULL" if durability == "FULL" else "NORMAL"
    ctx = QueueCtx("tenant-1")
    message = JobMessage(job_type="send_email", payload_bytes=PAYLOAD)
    ran = [0]
    all_ran = asyncio.Event()

    class SendEmail(Job[None, None]):
        JOB_TYPE = "send_email"
        user_id: int
        action: str

        async def execute(self, ctx: None) -> None:
            ran[0] += 1
            if ran[0] == work.jobs:
                all_ran.set()

    async def lifecycle() -> tuple[float, float, list[float], dict[str, Any]]:
        all_ran.clear()
        async with SqliteBackend(folder / "queue.db", synchronous=synchronous) as backend:
            adapter: QueueAdapter[None] = QueueAdapter(backend)
            await adapter.register_job(SendEmail)
            start = time.perf_counter()
            latencies = await _enqueue_all(backend, ctx, message, work)
            enqueued = time.perf_counter()
            worker = Worker(
                adapter, tenants=[ctx], concurrency=WORKER_CONCURRENCY, handle_signals=False
            )
            async with worker:
                await all_ran.wait()
                await worker.stop()  # graceful: returns once every job is settled
                done = time.perf_counter()
            settings = {
                "journal_mode": "wal",
                "synchronous": synchronous,
                "concurrency": WORKER_CONCURRENCY,
                "commits": backend.writer.commits,
                "units_per_commit": round(backend.writer.units / max(backend.writer.commits, 1)),
            }
            return enqueued - start, done - start, latencies, settings

    enqueue_s, total_s, loaded, settings = asyncio.run(lifecycle())
    settings["bytes_per_job"] = _bytes_per_job(folder / "queue.db", work.jobs)
    return _result("dogqueue Worker", durability, work, enqueue_s, total_s, loaded, [0.0], settings)


# -- peers ------------------------------------------------------------------------------


def _threads(target: Callable[[int], None], counts: list[int]) -> None:
    threads = [threading.Thread(target=target, args=(n,)) for n in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _run_threaded(
    enqueue: Callable[[], None], consume_one: Callable[[], bool], work: Workload
) -> tuple[float, float, list[float]]:
    """Producer threads, then consumer threads until the queue is empty."""
    latencies: list[float] = []
    lock = threading.Lock()

    def produce(count: int) -> None:
        mine = []
        for _ in range(count):
            start = time.perf_counter()
            enqueue()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    def consume(_: int) -> None:
        while consume_one():
            pass

    start = time.perf_counter()
    _threads(produce, _split(work.jobs, work.producers))
    enqueued = time.perf_counter()
    _threads(consume, [0] * work.consumers)
    done = time.perf_counter()
    return enqueued - start, done - start, latencies


def _unloaded(enqueue: Callable[[], None]) -> list[float]:
    samples = []
    for _ in range(UNLOADED_SAMPLES):
        start = time.perf_counter()
        enqueue()
        samples.append(time.perf_counter() - start)
    return samples


def _huey_class(synchronous: str) -> Any:
    """SqliteHuey with its connections at `synchronous` ("default": huey's own)."""
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class Storage(SqliteStorage):  # type: ignore[misc]
        def _create_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_connection()
            if synchronous != "default":
                conn.execute(f"PRAGMA synchronous = {synchronous}")
            return conn

    class Huey(SqliteHuey):  # type: ignore[misc]
        storage_class = Storage

    return Huey


def run_huey(folder: Path, work: Workload, synchronous: str) -> Result:
    Huey = _huey_class(synchronous)

    def storage(name: str) -> Any:
        return Huey("bench", filename=str(folder / name)).storage

    quiet_store = storage("unloaded.db")
    quiet = _unloaded(lambda: quiet_store.enqueue(PAYLOAD))
    store = storage("queue.db")
    enqueue_s, total_s, loaded = _run_threaded(
        lambda: store.enqueue(PAYLOAD), lambda: store.dequeue() is not None, work
    )
    settings = {
        **_pragmas(str(folder / "queue.db")),
        "synchronous": store.conn.execute("PRAGMA synchronous").fetchone()[0],
        "ack": "dequeue deletes the row (no separate ack)",
    }
    return _result("huey", synchronous, work, enqueue_s, total_s, loaded, quiet, settings)


def run_huey_consumer(folder: Path, work: Workload, synchronous: str) -> Result:
    """huey's real consumer (`consumers` worker threads) running no-op tasks, enqueued
    first through the task API by the producer threads."""
    import logging

    logging.getLogger("huey").setLevel(logging.WARNING)
    Huey = _huey_class(synchronous)

    huey = Huey("bench", filename=str(folder / "queue.db"))
    ran = [0]
    lock = threading.Lock()

    @huey.task()  # type: ignore[untyped-decorator]
    def send_email(user_id: int, action: str) -> None:
        with lock:
            ran[0] += 1

    latencies: list[float] = []

    def produce(count: int) -> None:
        mine = []
        for _ in range(count):
            began = time.perf_counter()
            send_email(12345, "send_welcome_email")
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    _threads(produce, _split(work.jobs, work.producers))
    enqueued = time.perf_counter()
    consumer = huey.create_consumer(workers=work.consumers, worker_type="thread", periodic=False)
    consumer.start()
    while ran[0] < work.jobs:
        time.sleep(0.002)
    done = time.perf_counter()
    consumer.stop(graceful=True)
    settings = {
        **_pragmas(str(folder / "queue.db")),
        "synchronous": huey.storage.conn.execute("PRAGMA synchronous").fetchone()[0],
        "workers": work.consumers,
    }
    return _result(
        "huey consumer",
        synchronous,
        work,
        enqueued - start,
        done - start,
        latencies,
        [0.0],
        settings,
    )


def run_persist_queue(folder: Path, work: Workload, synchronous: str) -> Result:
    from persistqueue import SQLiteAckQueue
    from persistqueue.exceptions import Empty

    def queue(name: str) -> Any:
        made: Any = SQLiteAckQueue(str(folder / name), multithreading=True, auto_commit=True)
        if synchronous != "default":
            for conn in (made._putter, made._getter):
                conn.execute(f"PRAGMA synchronous = {synchronous}")
        return made

    quiet_queue = queue("unloaded")
    quiet = _unloaded(lambda: quiet_queue.put(PAYLOAD))
    q = queue("queue")

    def consume_one() -> bool:
        try:
            item = q.get(block=False)
        except Empty:
            return False
        q.ack(item)
        return True

    enqueue_s, total_s, loaded = _run_threaded(lambda: q.put(PAYLOAD), consume_one, work)
    settings = {
        "journal_mode": _pragma(q._putter, "journal_mode"),
        "synchronous": _pragma(q._putter, "synchronous"),
    }
    return _result("persist-queue", synchronous, work, enqueue_s, total_s, loaded, quiet, settings)


def run_litequeue(folder: Path, work: Workload, synchronous: str) -> Result:
    from litequeue import LiteQueue

    def queue(name: str) -> Any:
        made = LiteQueue(str(folder / name))
        if synchronous != "default":
            made.conn.execute(f"PRAGMA synchronous = {synchronous}")
        return made

    quiet_queue = queue("unloaded.db")
    text = PAYLOAD.decode()
    quiet = _unloaded(lambda: quiet_queue.put(text))
    # One connection cannot hold two threads' transactions: one LiteQueue per thread.
    local = threading.local()

    def mine() -> Any:
        if not hasattr(local, "queue"):
            local.queue = queue("queue.db")
        return local.queue

    def consume_one() -> bool:
        q = mine()
        message = q.pop()
        if message is None:
            return False
        q.done(message.message_id)
        return True

    queue("queue.db")  # create the table before the threads race to
    enqueue_s, total_s, loaded = _run_threaded(lambda: mine().put(text), consume_one, work)
    probe = queue("queue.db")
    settings = {
        "journal_mode": probe.conn.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": probe.conn.execute("PRAGMA synchronous").fetchone()[0],
    }
    return _result("litequeue", synchronous, work, enqueue_s, total_s, loaded, quiet, settings)


def run_physical_limit(folder: Path, work: Workload, synchronous: str) -> Result:
    """Plain sqlite3: ROWS_PER_JOB rows per job, 1,000 rows per transaction, with a
    monotonic integer key and a blob the size of a dogqueue event."""
    conn = sqlite3.connect(folder / "limit.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE rows (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    blob = os.urandom(160)
    total = work.jobs * ROWS_PER_JOB
    start = time.perf_counter()
    for first in range(1, total + 1, 1_000):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO rows (seq, data) VALUES (?, ?)",
            ((seq, blob) for seq in range(first, min(first + 1_000, total + 1))),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    settings = {"journal_mode": "wal", "synchronous": synchronous, "rows_per_job": ROWS_PER_JOB}
    return _result("sqlite3 limit", synchronous, work, elapsed, elapsed, [0.0], [0.0], settings)


def run_commit_cost(folder: Path, work: Workload, synchronous: str) -> Result:
    """Plain sqlite3, one small row per transaction: what a commit costs on this disk,
    the bound of any queue that commits once per operation."""
    conn = sqlite3.connect(folder / "commits.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE rows (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    blob = os.urandom(160)
    start = time.perf_counter()
    for seq in range(1, work.jobs + 1):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO rows (seq, data) VALUES (?, ?)", (seq, blob))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    settings = {"journal_mode": "wal", "synchronous": synchronous}
    return _result(
        "one row per commit", synchronous, work, elapsed, elapsed, [0.0], [0.0], settings
    )


def run_statements_only(folder: Path, work: Workload, synchronous: str) -> Result:
    """dogqueue's own schema and SQL statements with no Python logic around them: the
    events of each lifecycle (enqueued, leased, completed) appended in transactions of
    `lease_batch` jobs, the hash-chain heads folded every `FOLD_EVERY` events (as
    dogqueue's writer does), the projection in memory (no
    SQL to find the ready jobs), and the checkpoint writing each job's final row and
    the status counts once (its window covers the whole run, as in dogqueue's).
    The gap between this and dogqueue is the cost of the engine, codec and asyncio."""
    from dogqueue.backend.sqlite.queries import Q, migrations, statements
    from dogqueue.backend.sqlite.transaction import FOLD_EVERY

    conn = sqlite3.connect(folder / "statements.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    for _, script in migrations():
        for statement in statements(script):
            conn.execute(statement)
    state, event, digest = os.urandom(_state_bytes()), os.urandom(150), os.urandom(32)
    job_ids = [f"{index:032x}" for index in range(work.jobs)]
    batch, seq, unfolded = work.lease_batch, 1, 0
    start = time.perf_counter()
    enqueued = start
    for version, kind in ((1, "enqueued"), (2, "leased"), (3, "completed")):
        for first in range(0, work.jobs, batch):
            conn.execute("BEGIN IMMEDIATE")
            events = []
            for index in range(first, min(work.jobs, first + batch)):
                events.append((seq, "t", job_ids[index], version, kind, event, digest, seq, None))
                seq += 1
            conn.executemany(Q["insert_event"], events)
            unfolded += len(events)
            if unfolded >= FOLD_EVERY:
                conn.execute(Q["fold_chain_heads"])
                conn.execute(Q["set_chain_heads_position"])
                unfolded = 0
            conn.execute("COMMIT")
        if version == 1:
            enqueued = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")  # the checkpoint
    rows = [
        (index + 1, "t", job_ids[index], "completed", "default", 1, "x", 0, None, None, 3, state)
        for index in range(work.jobs)
    ]
    conn.executemany(Q["insert_job"], rows)
    conn.execute(Q["add_to_job_count"], ("t", "completed", work.jobs))
    conn.execute(Q["set_checkpoint_position"], (seq - 1,))
    conn.execute("COMMIT")
    done = time.perf_counter()
    conn.close()
    settings = {"journal_mode": "wal", "synchronous": synchronous}
    return _result(
        "dogqueue SQL only",
        synchronous,
        work,
        enqueued - start,
        done - start,
        [0.0],
        [0.0],
        settings,
    )


def _state_bytes() -> int:
    """The size of a stored job state of this workload's message (a leased JobInfo)."""
    from dogqueue import JobMessage
    from dogqueue.core.codec import encode_job
    from dogqueue.core.events import Enqueued, Leased
    from dogqueue.core.evolve import evolve

    now = datetime.now(UTC)
    message = JobMessage(job_type="send_email", payload_bytes=PAYLOAD, run_at=now)
    tenant, job_id = "tenant-1", str(uuid.uuid4())
    enqueued = Enqueued(tenant_id=tenant, job_id=job_id, version=1, seq=1, at=now, message=message)
    leased = Leased(
        tenant_id=tenant,
        job_id=job_id,
        version=2,
        seq=2,
        at=now,
        token=1,
        attempt=1,
        expires_at=now,
    )
    job = evolve(evolve(None, enqueued), leased)
    assert job is not None
    return len(encode_job(job))


def _result(
    name: str,
    durability: str,
    work: Workload,
    enqueue_s: float,
    total_s: float,
    loaded: list[float],
    quiet: list[float],
    settings: dict[str, Any],
) -> Result:
    return Result(
        name=name,
        durability=durability,
        enqueue_per_s=work.jobs / enqueue_s,
        lifecycle_per_s=work.jobs / total_s,
        loaded_p50_ms=statistics.median(loaded) * 1e3,
        loaded_p99_ms=_percentile(loaded, 0.99) * 1e3,
        unloaded_p50_ms=statistics.median(quiet) * 1e3,
        unloaded_p99_ms=_percentile(quiet, 0.99) * 1e3,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        settings=settings,
    )


RUNNERS: dict[str, Callable[[Path, Workload, str], Result]] = {
    "dogqueue": run_dogqueue,
    "dogqueue Worker": run_dogqueue_worker,
    "huey": run_huey,
    "huey consumer": run_huey_consumer,
    "persist-queue": run_persist_queue,
    "litequeue": run_litequeue,
    "sqlite3 limit": run_physical_limit,
    "dogqueue SQL only": run_statements_only,
    "one row per commit": run_commit_cost,
}
#: (runner, durability) in the order they run. "default" leaves the library's own.
PLAN: list[tuple[str, str]] = [
    ("sqlite3 limit", "NORMAL"),
    ("one row per commit", "NORMAL"),
    ("one row per commit", "FULL"),
    ("dogqueue SQL only", "NORMAL"),
    ("dogqueue", "NORMAL"),
    ("dogqueue", "FULL"),
    ("dogqueue Worker", "NORMAL"),
    ("huey", "NORMAL"),
    ("huey", "default"),
    ("huey consumer", "NORMAL"),
    ("persist-queue", "NORMAL"),
    ("persist-queue", "default"),
    ("litequeue", "default"),
]


def run_isolated(name: str, durability: str, work: Workload) -> Result:
    """Run one library in a fresh interpreter, so peak memory is its own."""
    command = [
        sys.executable,
        __file__,
        "--one",
        name,
        "--durability",
        durability,
        "--jobs",
        str(work.jobs),
        "--producers",
        str(work.producers),
        "--consumers",
        str(work.consumers),
        "--lease-batch",
        str(work.lease_batch),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} ({durability}) failed:\n{done.stderr}")
    return Result(**json.loads(done.stdout.strip().splitlines()[-1]))


def _median_run(results: list[Result]) -> Result:
    """The repetition with the median lifecycle throughput, carrying every run's figure."""
    ordered = sorted(results, key=lambda r: r.lifecycle_per_s)
    median = ordered[(len(ordered) - 1) // 2]
    median.lifecycle_runs = [r.lifecycle_per_s for r in results]
    return median


# -- report -----------------------------------------------------------------------------


def _durability_of(result: Result) -> str:
    sync = result.settings.get("synchronous")
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return names.get(sync, str(sync)) if isinstance(sync, int) else str(sync)


#: The reference rows, which are not queues, and what each measures.
LIMITS = {
    "sqlite3 limit": f"physical limit: plain sqlite3, {ROWS_PER_JOB} rows/job, 1,000 rows/tx",
    "dogqueue SQL only": "dogqueue's schema and statements alone, no Python logic",
    "one row per commit": "plain sqlite3, one row per transaction (commit cost)",
}


def _lifecycle_cell(result: Result) -> str:
    runs = result.lifecycle_runs
    if len(runs) < 2:
        return f"{result.lifecycle_per_s:,.0f}"
    return f"{result.lifecycle_per_s:,.0f} ({min(runs):,.0f} to {max(runs):,.0f})"


def table(results: list[Result]) -> str:
    """The Markdown table of a run, with ratios against dogqueue at the same durability."""
    ours = {_durability_of(r): r for r in results if r.name == "dogqueue"}
    limit = next((r for r in results if r.name == "sqlite3 limit"), None)
    lines = [
        "| library | durability (journal, synchronous) | enqueue jobs/s | lifecycle jobs/s"
        " | dogqueue / it (lifecycle) | enqueue p50 / p99 ms, loaded | enqueue p50 / p99 ms,"
        " unloaded | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        sync = _durability_of(r)
        journal = r.settings.get("journal_mode", "?")
        here = ours.get(sync)
        ratio = ""
        if here is not None and r.name != "dogqueue":
            ratio = f"{here.lifecycle_per_s / r.lifecycle_per_s:.1f}x"
        if r.name in END_TO_END:
            ratio = _end_to_end_ratio(r, results)
        if r.name in LIMITS:
            share = ""
            if here is not None and r.name != "one row per commit":
                share = f"dogqueue reaches {here.lifecycle_per_s / r.lifecycle_per_s:.0%}"
            enqueue = f"{r.enqueue_per_s:,.0f}" if r.name == "dogqueue SQL only" else ""
            lines.append(
                f"| {LIMITS[r.name]} | {journal}, {sync} | {enqueue}"
                f" | {_lifecycle_cell(r)} | {share} | | | {r.peak_rss_mib:.0f} |"
            )
            continue
        unloaded = f"{r.unloaded_p50_ms:.3f} / {r.unloaded_p99_ms:.3f}"
        if r.name in END_TO_END:
            unloaded = ""  # measured once, on the rows of the raw API
        lines.append(
            f"| {r.name} | {journal}, {sync} | {r.enqueue_per_s:,.0f} | {_lifecycle_cell(r)}"
            f" | {ratio} | {r.loaded_p50_ms:.2f} / {r.loaded_p99_ms:.2f}"
            f" | {unloaded} | {r.peak_rss_mib:.0f} |"
        )
    peers = [r for r in results if r.name != "dogqueue" and r.name not in LIMITS]
    if peers and ours:
        best = max(peers, key=lambda r: r.lifecycle_per_s)
        matched = ours.get(_durability_of(best)) or max(
            ours.values(), key=lambda r: r.lifecycle_per_s
        )
        lines.append("")
        lines.append(
            f"Fastest peer: {best.name} ({_durability_of(best)}) at {best.lifecycle_per_s:,.0f}"
            f" lifecycle jobs/s; dogqueue ({_durability_of(matched)}) does"
            f" {matched.lifecycle_per_s / best.lifecycle_per_s:.1f}x that."
        )
        if limit is not None and "NORMAL" in ours:
            lines.append(
                f"Physical limit (plain sqlite3, NORMAL): {limit.lifecycle_per_s:,.0f} jobs/s;"
                f" dogqueue reaches {ours['NORMAL'].lifecycle_per_s / limit.lifecycle_per_s:.0%}."
            )
        lines += _end_to_end_lines(results, ours)
        statements_only = next((r for r in results if r.name == "dogqueue SQL only"), None)
        if statements_only is not None and "NORMAL" in ours:
            floor = statements_only.lifecycle_per_s
            lines.append(
                f"dogqueue's own SQL with no Python around it: {floor:,.0f} jobs/s;"
                f" dogqueue reaches {ours['NORMAL'].lifecycle_per_s / floor:.0%}."
            )
    return "\n".join(lines)


#: The rows that run a real consumer (dogqueue's Worker, huey's consumer) on no-op jobs.
END_TO_END = ("dogqueue Worker", "huey consumer")


def _end_to_end_ratio(row: Result, results: list[Result]) -> str:
    """The Worker's share of the raw lifecycle; the Worker against huey's consumer."""
    sync = _durability_of(row)
    same = {r.name: r for r in results if _durability_of(r) == sync}
    if row.name == "dogqueue Worker" and "dogqueue" in same:
        return f"{row.lifecycle_per_s / same['dogqueue'].lifecycle_per_s:.0%} of raw lifecycle"
    if row.name == "huey consumer" and "dogqueue Worker" in same:
        return f"{same['dogqueue Worker'].lifecycle_per_s / row.lifecycle_per_s:.1f}x (Worker)"
    return ""


def _end_to_end_lines(results: list[Result], ours: dict[str, Result]) -> list[str]:
    """Summary lines for the end-to-end rows and the log's size on disk."""
    lines = []
    worker = next((r for r in results if r.name == "dogqueue Worker"), None)
    consumer = next((r for r in results if r.name == "huey consumer"), None)
    if worker is not None:
        raw = ours.get(_durability_of(worker))
        share = (
            f" ({worker.lifecycle_per_s / raw.lifecycle_per_s:.0%} of the raw API)" if raw else ""
        )
        line = (
            f"End to end, no-op jobs: dogqueue's Worker {worker.lifecycle_per_s:,.0f} jobs/s{share}"
        )
        if consumer is not None:
            line += (
                f"; huey's consumer {consumer.lifecycle_per_s:,.0f} jobs/s"
                f" ({worker.lifecycle_per_s / consumer.lifecycle_per_s:.1f}x)"
            )
        lines.append(line + ".")
    sizes = [
        f"{r.settings['bytes_per_job']:,} ({_durability_of(r)}, {r.name})"
        for r in results
        if "bytes_per_job" in r.settings
    ]
    if sizes:
        lines.append(
            "dogqueue's database after the lifecycle (log, projection, indexes), bytes/job: "
            + "; ".join(sizes)
            + "."
        )
    return lines


def chart(results: list[Result], path: Path) -> None:
    """A bar chart of lifecycle throughput per library and durability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(reversed(results))  # barh draws bottom-up; keep the table's order
    labels = [f"{LIMITS.get(r.name, r.name)} ({_durability_of(r)})" for r in shown]
    values = [r.lifecycle_per_s for r in shown]
    colors = [
        "tab:blue" if r.name == "dogqueue" else "tab:gray" if r.name in LIMITS else "tab:orange"
        for r in shown
    ]
    figure, axes = plt.subplots(figsize=(11, 5.5))
    bars = axes.barh(labels, values, color=colors)
    axes.bar_label(bars, labels=[f" {v:,.0f}" for v in values], fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("lifecycle jobs/s, log scale (enqueue, then lease + ack); median of the runs")
    axes.set_title("One SQLite file, one run, one machine: queues (blue: dogqueue) and references")
    axes.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine() -> str:
    """One line describing the machine the run used."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--producers", type=int, default=32)
    parser.add_argument("--consumers", type=int, default=32)
    parser.add_argument("--lease-batch", type=int, default=32, help="dogqueue dequeue_many n")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the whole plan")
    parser.add_argument("--only", nargs="*", help="run only these libraries")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replot", type=Path, help="redraw table and chart from a JSON")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--durability", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = Workload(args.jobs, args.producers, args.consumers, args.lease_batch)

    if args.one:
        with tempfile.TemporaryDirectory() as folder:
            result = RUNNERS[args.one](Path(folder), work, args.durability)
        print(json.dumps(asdict(result)))
        return 0

    if args.replot:
        saved = json.loads(args.replot.read_text())
        results = [Result(**found) for found in saved["results"]]
        print(table(results))
        chart(results, args.out / "compare.png")
        return 0

    print(f"machine: {machine()}")
    print(f"workload: {asdict(work)}")
    plan = [(name, durability) for name, durability in PLAN if not args.only or name in args.only]
    runs: dict[tuple[str, str], list[Result]] = {step: [] for step in plan}
    for repetition in range(1, args.repeat + 1):
        print(f"run {repetition} of {args.repeat}")
        for name, durability in plan:  # interleaved, so drift in the machine hits all
            result = run_isolated(name, durability, work)
            print(
                f"  {name:17} {durability:8} lifecycle {result.lifecycle_per_s:9,.0f} jobs/s"
                f"  settings {result.settings}",
                flush=True,
            )
            runs[(name, durability)].append(result)
    results = [_median_run(found) for found in runs.values()]
    report = table(results)
    print()
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        f"Run {stamp} on {machine()}\n\nWorkload: {asdict(work)}; lifecycle is the median of"
        f" {args.repeat} runs (min to max in brackets).\n\n"
    )
    (args.out / "compare.md").write_text(header + report + "\n")
    (args.out / "compare.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "when": stamp,
                "workload": asdict(work),
                "results": [asdict(r) for r in results],
            },
            indent=1,
        )
    )
    chart(results, args.out / "compare.png")
    print(f"\nwrote {args.out / 'compare.md'}, compare.json, compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
