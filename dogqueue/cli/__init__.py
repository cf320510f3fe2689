"""The `dogqueue` command. Each module in this package that defines `register(subparsers)`
adds one or more subcommands; a subcommand sets `run` (args -> exit code) as its default."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from importlib import metadata


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="dogqueue",
        description="dogqueue: an event-sourced job queue. Run a demo, a worker, or inspect,"
        " verify and replay a queue's log.",
    )
    parser.add_argument("--version", action="version", version=f"dogqueue {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def version() -> str:
    """The installed dogqueue's version."""
    try:
        return metadata.version("dogqueue")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code. Bare `dogqueue` prints the help."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`dogqueue jobs | head`): stop quietly, as `cat` does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
