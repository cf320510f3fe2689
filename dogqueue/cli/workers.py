"""`dogqueue workers`: the workers that announced themselves recently (live, stopped,
or gone quiet), from their presence records."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime

import msgspec

from dogqueue.cli._common import EXIT_OK, add_db, guarded, table, when
from dogqueue.cli.act import open_db
from dogqueue.core.workers import RECENT, WorkerPresence, WorkerState, worker_state


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `workers`."""
    parser = subparsers.add_parser(
        "workers",
        help="list live workers and those stopped or gone in the last hour",
        description="List the workers that announced themselves in the last hour: host,"
        " pid, queues, tenants, concurrency, running jobs, version, when each started and"
        " was last seen, and its state: live, stopped (said so), or gone (not heard from"
        " for 30 s: killed, or its host was lost). Workers announce themselves every 10 s.",
    )
    add_db(parser, writes=True)  # opened as a backend: an older schema is migrated
    parser.add_argument("--json", action="store_true", help="one JSON object per worker")
    parser.set_defaults(run=guarded(_run))


def _run(args: argparse.Namespace) -> int:
    now, workers = asyncio.run(_read(args.db))
    if args.json:
        for presence in workers:
            document = msgspec.to_builtins(presence)
            document["state"] = worker_state(presence, now).value
            print(json.dumps(document))
        return EXIT_OK
    rows = [_row(presence, now) for presence in workers]
    header = ["STATE", "WORKER", "HOST", "PID", "QUEUES", "TENANTS", "RUNNING", "VERSION"]
    print(table(rows, [*header, "STARTED", "LAST SEEN"]))
    return EXIT_OK


async def _read(db: str) -> tuple[datetime, list[WorkerPresence]]:
    async with open_db(db) as backend:
        now = backend.clock()
        return now, await backend.read_workers(seen_since=now - RECENT)


def _row(presence: WorkerPresence, now: datetime) -> list[str]:
    state = worker_state(presence, now)
    return [
        state.value,
        presence.worker_id,
        presence.host,
        str(presence.pid),
        ",".join(presence.queues),
        "all" if presence.tenants is None else ",".join(presence.tenants),
        f"{presence.running if state is WorkerState.LIVE else 0}/{presence.concurrency}",
        presence.version,
        when(presence.started_at),
        when(presence.last_seen),
    ]
