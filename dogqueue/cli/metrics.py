"""`dogqueue metrics`: the queue metrics folded from a queue's log (read-only), as text,
JSON or Prometheus exposition."""

from __future__ import annotations

import argparse
import json

from dogqueue.cli._common import add_db, guarded, read_log, say
from dogqueue.core.message import QueueCtx
from dogqueue.log.reader import LogReader
from dogqueue.observability.metrics import MetricsSnapshot
from dogqueue.observability.outcome import Outcome
from dogqueue.observability.reader import MetricsReader


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `metrics` subcommand."""
    parser = subparsers.add_parser(
        "metrics",
        help="print queue metrics folded from the log",
        description="Fold a queue's log into metrics (counts, rates, execution times,"
        " depths) and print them.",
    )
    add_db(parser)
    parser.add_argument("--tenant", help="only this tenant (default: every tenant)")
    parser.add_argument(
        "--format", choices=("text", "json", "prometheus"), default="text", help="output format"
    )
    parser.add_argument(
        "--no-tenant-labels",
        action="store_true",
        help="with --format prometheus: sum tenants into one series",
    )
    parser.set_defaults(run=guarded(run))


def run(args: argparse.Namespace) -> int:
    """Print the metrics."""
    ctx = None if args.tenant is None else QueueCtx(args.tenant)

    async def read(log: LogReader) -> MetricsSnapshot:
        return await MetricsReader(log).snapshot(ctx)

    snapshot = read_log(args.db, read)
    if args.format == "json":
        say(json.dumps(snapshot.to_dict(), indent=2, sort_keys=True))
    elif args.format == "prometheus":
        from dogqueue.observability.prometheus import render

        say(render(snapshot, tenant_labels=not args.no_tenant_labels).decode(), end="")
    else:
        say(format_text(snapshot))
    return 0


def format_text(snapshot: MetricsSnapshot) -> str:
    """A table: one row per tenant, queue and job type."""
    header = (
        "tenant",
        "queue",
        "job_type",
        "jobs",
        "ready",
        "sched",
        "leased",
        "done",
        "failed",
        "retries",
        "dead",
        "avg_exec_s",
        "oldest_ready_s",
    )
    rows: list[tuple[str, ...]] = [header]
    for item in snapshot.series:
        key, counters = item.key, item.counters
        completed = counters.execution.get(Outcome.COMPLETED)
        average = (
            "-"
            if completed is None or completed.count == 0
            else f"{(completed.total / completed.count).total_seconds():.3f}"
        )
        age = (
            "-" if item.oldest_ready_age is None else f"{item.oldest_ready_age.total_seconds():.1f}"
        )
        rows.append(
            (
                key.tenant_id,
                key.queue,
                key.job_type,
                str(sum(item.by_status.values())),
                str(item.ready),
                str(item.scheduled),
                str(item.leased),
                str(counters.completed),
                str(counters.failed_attempts),
                str(counters.retries),
                str(counters.dead),
                average,
                age,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in [f"metrics at {snapshot.at.isoformat()}", *lines])
