"""Reading a SQLite file's projection checkpoint and log straight from its tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.projection import JobKey
from dogqueue.log.stored import stored_event, stored_job


class Stored(NamedTuple):
    """The checkpoint's position and rows, and every event of the log."""

    position: int
    rows: dict[JobKey, JobInfo]
    events: list[AnyEvent]


def read_checkpoint(path: Path) -> Stored:
    """What the file holds now."""
    conn = sqlite3.connect(path)
    try:
        (position,) = conn.execute("SELECT seq FROM projection_checkpoint").fetchone()
        rows = {
            (t, j): stored_job(state, j)
            for t, j, state in conn.execute("SELECT tenant_id, job_id, state FROM jobs")
        }
        events = [stored_event(d, s) for s, d in conn.execute("SELECT seq, data FROM events")]
    finally:
        conn.close()
    return Stored(int(position), rows, events)
