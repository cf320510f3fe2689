"""What each index of the SQLite schema costs the lifecycle: dogqueue's own statements
(those of compare.py's own-SQL row, no Python logic) on the current schema and on
variants of it, measured as WAL bytes written per job (automatic checkpoints off: the
steadiest figure on a shared machine) and process CPU per job.

    python bench/schema_costs.py --jobs 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from dogqueue.backend.sqlite.queries import Q, migrations, statements

#: Statements run after the migrations, per variant.
VARIANTS: dict[str, list[str]] = {
    "schema as shipped": [],
    "with jobs_by_status (schema 6's)": [
        "CREATE INDEX jobs_by_status ON jobs (tenant_id, status)",
        "DROP INDEX jobs_by_tenant",
        "DROP INDEX jobs_by_rare_status",
    ],
    "without jobs_by_tenant": ["DROP INDEX jobs_by_tenant"],
    "event index on integer keys": [
        "DROP INDEX events_by_job",
        "CREATE UNIQUE INDEX events_by_int ON events (tpos, version)",
    ],
    "without the event index (a bound)": ["DROP INDEX events_by_job"],
}
STATE_BYTES = 357  # a leased JobInfo of compare.py's message
BATCH = 32


def lifecycle(folder: Path, jobs: int, extra: list[str]) -> tuple[float, float]:
    """(WAL bytes per job, CPU µs per job) of `jobs` lifecycles in batches of BATCH."""
    conn = sqlite3.connect(folder / "costs.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    for _, script in migrations():
        for statement in statements(script):
            conn.execute(statement)
    for statement in extra:
        conn.execute(statement)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    state, event, digest = os.urandom(STATE_BYTES), os.urandom(150), os.urandom(32)
    ids = [f"{index:032x}" for index in range(jobs)]
    seq = 1
    start = time.process_time()
    for first in range(0, jobs, BATCH):
        conn.execute("BEGIN IMMEDIATE")
        rows, events = [], []
        for index in range(first, min(jobs, first + BATCH)):
            rows.append((index + 1, "t", ids[index], "enqueued", "default", 1, "x", 0))
            events.append((seq, "t", ids[index], 1, "enqueued", event, digest, seq, None))
            seq += 1
        conn.executemany(Q["insert_job"], [(*row, None, None, 1, state) for row in rows])
        conn.executemany(Q["insert_event"], events)
        conn.execute(Q["set_chain_head"], ("t", seq - 1, digest, seq - 1))
        conn.execute(Q["add_to_job_count"], ("t", "enqueued", len(events)))
        conn.execute("COMMIT")
    for status, version in (("leased", 2), ("completed", 3)):
        for first in range(0, jobs, BATCH):
            conn.execute("BEGIN IMMEDIATE")
            batch = range(first, min(jobs, first + BATCH))
            if status == "completed":
                conn.execute(Q["load_jobs"], ("t", json.dumps([ids[i] for i in batch])))
            updates = [(status, 0, None, version, state, i + 1, version - 1) for i in batch]
            events = []
            for index in batch:
                events.append((seq, "t", ids[index], version, status, event, digest, seq, None))
                seq += 1
            conn.executemany(Q["update_job"], updates)
            conn.executemany(Q["insert_event"], events)
            conn.execute(Q["set_chain_head"], ("t", seq - 1, digest, seq - 1))
            previous = "enqueued" if status == "leased" else "leased"
            moved = [("t", previous, -len(events)), ("t", status, len(events))]
            conn.executemany(Q["add_to_job_count"], moved)
            conn.execute("COMMIT")
    cpu = (time.process_time() - start) / jobs * 1e6
    wal = os.path.getsize(folder / "costs.db-wal") / jobs
    conn.close()
    return wal, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeat):
        for name, extra in VARIANTS.items():  # interleaved: a load burst hits every variant
            with tempfile.TemporaryDirectory() as folder:
                figures[name].append(lifecycle(Path(folder), args.jobs, extra))
    print("| schema | WAL bytes/job | CPU µs/job, median (range) |")
    print("|---|---:|---:|")
    for name, runs in figures.items():
        wal = statistics.median(w for w, _ in runs)
        cpus = [c for _, c in runs]
        print(
            f"| {name} | {wal:,.0f} | {statistics.median(cpus):.1f}"
            f" ({min(cpus):.1f} to {max(cpus):.1f}) |"
        )


if __name__ == "__main__":
    main()
