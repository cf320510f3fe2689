"""The SQLite backend at scale: processes sharing one file, opening a long log, and the
memory a process holds per live job.

- processes: the raw lifecycle (enqueue, then lease 32 at a time and settle) of `--jobs`
  jobs by 1 process, then split over 4 processes writing one file at once (timed from
  when all are ready; `--repeat` pairs), and the CPU a second projection spends folding
  another writer's events (`--events -1` stops there);
- open: a log of `--events` events (as many enqueued jobs, every one ready), built with
  `enqueue_many`; a fresh process opens it and leases its first job; a lease's cost at
  that depth beside its cost with 1,000 ready jobs; the same log with its projection
  checkpoint left at position 0 (every event behind it: the opening folds them all);
- memory: resident memory of a process that opens the file and leases from it, per
  100,000 live (ready) jobs, beside an empty file.

    python bench/sqlite_scale.py --jobs 20000 --events 1000000
    python bench/sqlite_scale.py --jobs 20000 --events -1 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from bench import cpu_per_job
from dogqueue import Completion, JobMessage, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.connection import connect
from dogqueue.backend.sqlite.projection import LogProjection

CTX = QueueCtx("tenant-1")
MESSAGE = JobMessage(job_type="send_email", payload_bytes=b'{"user_id": 12345}')
#: Jobs per enqueue_many call while a long log is built.
BUILD_CHUNK = 10_000
#: Leases timed at each depth (the median is reported).
LEASES_TIMED = 200
#: Numbers the files of the process runs.
_RUNS = itertools.count()


async def lifecycle(path: str, jobs: int) -> float:
    """Seconds to open a backend, enqueue `jobs` from 32 producers, then lease and
    settle them all (`cpu_per_job`'s workload)."""
    start = time.perf_counter()
    await cpu_per_job.lifecycle_cpu_us(Path(path), jobs)
    return time.perf_counter() - start


def processes(folder: Path, jobs: int, count: int) -> tuple[float, float, float]:
    """Jobs/s of `count` processes each running the lifecycle of jobs/count jobs on
    one file: timed from their start together, and from the moment all of them are
    ready (their interpreters started and imports done; starting 4 interpreters at
    once on 2 cores costs about half a second that no writing is in); and the CPU
    seconds (user + system) the processes spent in all, start included (steadier than
    wall time on a shared machine)."""
    # A fresh file each time: a file that kept the last run's 60,000 events made each
    # repeat slower than the one before (by about a tenth).
    path = folder / f"shared-{count}-{next(_RUNS)}.db"
    asyncio.run(SqliteBackend(path).close())  # the schema, before the processes race
    cpu_before = _children_cpu()
    start = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child-lifecycle", str(path), str(jobs // count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    for child in children:
        assert child.stdout is not None
        child.stdout.readline()  # ready
    ready = time.perf_counter()
    for child in children:
        assert child.stdin is not None
        child.stdin.close()  # go
    for child in children:
        if child.wait() != 0:
            raise RuntimeError("a lifecycle process failed")
    end = time.perf_counter()
    for child in children:
        assert child.stdout is not None
        child.stdout.close()
    done = jobs // count * count
    return done / (end - start), done / (end - ready), _children_cpu() - cpu_before


def _children_cpu() -> float:
    """CPU seconds of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def foreign_fold_us(path: Path, jobs: int) -> float:
    """CPU µs per event that a second projection on the file spends folding what one
    backend appends (the catch-up every other writing process runs): the backend runs
    the lifecycle 32 jobs at a time (an enqueue of 32, a lease of 32, their settle),
    and the projection folds after each of those transactions, as a process that looks
    between others' commits does."""
    conn = connect(str(path), "NORMAL")
    projection = LogProjection()
    spent, folded = 0.0, 0

    def fold() -> None:
        nonlocal spent, folded
        began = time.thread_time()
        conn.execute("BEGIN")
        if not projection.loaded:
            projection.load_checkpoint(conn)
        folded += projection.catch_up(conn)
        conn.execute("COMMIT")
        spent += time.thread_time() - began

    async with SqliteBackend(path) as backend:
        fold()
        for _ in range(jobs // 32):
            await asyncio.gather(*(backend.enqueue(CTX, MESSAGE) for _ in range(32)))
            fold()
            leases = await backend.dequeue_many(CTX, ["default"], 32)
            fold()
            await backend.settle_many(CTX, [Completion(lease=lease) for lease in leases])
            fold()
    conn.close()
    return spent / max(folded, 1) * 1e6


async def build(path: Path, events: int, *, checkpointed: bool = True) -> None:
    """A log of `events` enqueued jobs; not `checkpointed`: its checkpoint stays at
    position 0 (the backend's checkpointer is taken away), so an opening folds them all."""
    async with SqliteBackend(path) as backend:
        if not checkpointed:
            backend.writer.projection_checkpointer = None
        for done in range(0, events, BUILD_CHUNK):
            await backend.enqueue_many(CTX, [MESSAGE] * min(BUILD_CHUNK, events - done))


async def open_and_lease(path: str) -> dict[str, float]:
    """Seconds from constructing the backend to its first lease, the median lease after
    it (ms), and this process's peak resident memory (MiB)."""
    start = time.perf_counter()
    async with SqliteBackend(path) as backend:
        await backend.dequeue(CTX, ["default"])
        opened = time.perf_counter() - start
        samples = []
        for _ in range(LEASES_TIMED):
            began = time.perf_counter()
            await backend.dequeue(CTX, ["default"])
            samples.append(time.perf_counter() - began)
    samples.sort()
    return {"open_s": opened, "lease_ms": samples[len(samples) // 2] * 1e3, "rss_mib": peak_rss()}


def peak_rss() -> float:
    """This process's peak resident memory (MiB) since it started its program: Linux's
    VmHWM (`ru_maxrss` keeps the peak of the process it was forked from, here the
    parent that built the log)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measured_in_a_fresh_process(path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-open", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="pairs of 1 and 4 processes")
    parser.add_argument("--child-lifecycle", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-open", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_lifecycle:
        print("ready", flush=True)
        sys.stdin.read()  # until the parent says go (closes our stdin)
        asyncio.run(lifecycle(args.child_lifecycle[0], int(args.child_lifecycle[1])))
        return
    if args.child_open:
        print(json.dumps(asyncio.run(open_and_lease(args.child_open))))
        return
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        ratios, cpu_ratios = [], []
        for _ in range(args.repeat):  # 1 and 4 processes alternated: a pair each time
            one, four = processes(folder, args.jobs, 1), processes(folder, args.jobs, 4)
            ratios.append(four[1] / one[1])
            cpu_ratios.append(four[2] / one[2])
            print(
                f"lifecycle, 1 process: {one[1]:,.0f} jobs/s; 4 processes on one file:"
                f" {four[1]:,.0f} ({four[1] / one[1]:.2f}x); timed from the processes' start:"
                f" {one[0]:,.0f} and {four[0]:,.0f} ({four[0] / one[0]:.2f}x); CPU"
                f" {one[2]:.2f} s and {four[2]:.2f} s ({four[2] / one[2]:.2f}x)"
            )
        if args.repeat > 1:
            print(
                f"4 processes / 1 process, median of {args.repeat}: {median(ratios):.2f}x;"
                f" their CPU, median: {median(cpu_ratios):.2f}x"
            )
        fold = asyncio.run(foreign_fold_us(folder / "fold.db", args.jobs))
        print(f"another process's events folded: {fold:.1f} µs CPU per event")
        if args.events < 0:
            return
        for depth, checkpointed in (
            (0, True),
            (1_000, True),
            (args.events, True),
            (args.events, False),
        ):
            path = folder / f"depth-{depth}-{checkpointed}.db"
            began = time.perf_counter()
            asyncio.run(build(path, depth, checkpointed=checkpointed))
            built = time.perf_counter() - began
            figures = measured_in_a_fresh_process(path)
            where = "checkpointed" if checkpointed else "all behind the checkpoint"
            print(
                f"{depth:>9,} events, {where} ({built:.0f}s to build): open to first lease"
                f" {figures['open_s'] * 1e3:.0f} ms, lease p50 {figures['lease_ms']:.3f} ms,"
                f" peak RSS {figures['rss_mib']:.0f} MiB"
            )


if __name__ == "__main__":
    main()
