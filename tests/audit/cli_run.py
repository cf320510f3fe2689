"""Running the `dogqueue` command as a user does: in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dogqueue.backend.locate import DB_ENV


def dogqueue(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `dogqueue ARGS` (DOGQUEUE_DB unset unless `env` sets it)."""
    environment = {k: v for k, v in os.environ.items() if k != DB_ENV}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dogqueue", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )
