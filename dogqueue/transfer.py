"""Moving a whole log into a new or empty queue of any backend (`dogqueue import`):
copied by `dogqueue.backend.importing`, then verified before the move counts as done."""

from __future__ import annotations

import os
from typing import NamedTuple

from dogqueue.audit.report import Report
from dogqueue.audit.verify import verify_log
from dogqueue.backend import locate
from dogqueue.backend.importing import import_events, read_log


class Imported(NamedTuple):
    """What an import moved, and the verification of the target's log (its chain
    heads, fold and problems; events still waiting for a position count as one)."""

    events: int
    report: Report


async def import_log(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Imported:
    """Copy the whole log of `source` (a SQLite file, a postgresql:// or a redis:// URL)
    into `target` (a new or empty queue of any of them; a non-empty one is refused with
    nothing written); return once every event is numbered and the target's log
    verified. Stop the source's workers first: events appended meanwhile stay behind."""
    events = await read_log(source)
    target_text = os.fspath(target)
    async with locate.open_backend(target_text) as backend:
        count = await import_events(backend, target_text, events)
        log = backend.log_reader()
        report = await verify_log(log)
        waiting = await log.unsealed()
    if waiting:
        report.add(None, f"{len(waiting)} imported event(s) are not numbered")
    return Imported(count, report)
