"""`dogqueue demo`: the email-inbox pipeline on an embedded SQLite file."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from dogqueue.cli.demo_pipeline import run_demo


def register(subparsers: Any) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run the email-inbox demo pipeline",
        description="Two tenants, four job types (snapshot, analysis, summaries, cleanup) on"
        " a SQLite file: a retry after a flaky API, a refused duplicate, a scheduled job, a"
        " cancel that wins over a running job, and every job's history.",
    )
    parser.add_argument(
        "--dir", type=Path, help="keep the database in this directory (default: a temporary one)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of `dogqueue demo`."""
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run_demo(args.dir))
    return 0
