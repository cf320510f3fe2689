"""`dogqueue worker --reload`, for development only: the worker runs in a child process
that is stopped gracefully (SIGINT, as Ctrl-C) and started again whenever a Python file
under the watched directory changes. File watching is watchfiles' (`dogqueue[reload]`)."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

log = logging.getLogger("dogqueue.worker")

#: Extra seconds a stopping worker gets past its --grace before it is killed.
STOP_MARGIN_SECONDS = 5


def run_reloading(command: list[str], watched: Path, grace_seconds: float) -> int:
    """Run `command`, restarting it on each change to a .py file under `watched`, until
    SIGINT or SIGTERM; return 0, or 2 when watchfiles is not installed."""
    try:
        import watchfiles
    except ImportError:
        print(
            "dogqueue worker: --reload needs watchfiles: pip install 'dogqueue[reload]'",
            file=sys.stderr,
        )
        return 2
    log.info("reloading on changes to .py files under %s (for development only)", watched)
    watchfiles.run_process(
        watched,
        target=shlex.join(command),
        target_type="command",
        watch_filter=watchfiles.PythonFilter(),
        sigint_timeout=int(grace_seconds) + STOP_MARGIN_SECONDS,
        callback=lambda changes: log.warning(
            "%d file(s) changed (%s ...): restarting the worker",
            len(changes),
            sorted(path for _, path in changes)[0],
        ),
    )
    return 0
