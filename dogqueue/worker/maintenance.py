"""What a worker does besides running jobs: return expired leases (the reaper) and
enqueue the schedules' due ticks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from dogqueue.backend.contract import Backend
from dogqueue.client.adapter import QueueAdapter
from dogqueue.core.errors import QueueError
from dogqueue.observability.logging import log_unexpected
from dogqueue.schedules import Schedule, enqueue_due, enqueue_requested_runs
from dogqueue.worker.settings import SCHEDULE_RECHECK_SECONDS

log = logging.getLogger("dogqueue.worker")


async def reap_forever(
    backend: Backend, interval: float, found_work: asyncio.Event, error_text: bool = True
) -> None:
    """Expire the leases whose time has come every `interval` seconds; set `found_work`
    when that made jobs ready again. `error_text=False` logs an error's type only."""
    while True:
        try:
            reaped = await backend.reap_expired()
            if reaped:
                log.info("reaper returned %d expired leases", reaped)
                found_work.set()
        except QueueError as error:
            log_unexpected(log, "reaper failed; trying again later", error, error_text)
        await asyncio.sleep(interval)


async def schedule_forever(
    adapter: QueueAdapter[Any],
    schedules: Sequence[Schedule],
    wake: asyncio.Event,
    found_work: asyncio.Event,
    error_text: bool = True,
) -> None:
    """Enqueue the schedules' due ticks at start and whenever the backend's clock has
    entered a new minute since the last successful check (or `wake` is set), and the
    runs operators requested (checked every `SCHEDULE_RECHECK_SECONDS`); set
    `found_work` when ticks were enqueued. `error_text=False` logs an error's type only."""
    checked: datetime | None = None
    runs_seen: dict[tuple[str, str], int] = {}
    while True:
        try:  # an operator's "run now" requests, seen within a recheck period
            if await enqueue_requested_runs(adapter, schedules, runs_seen):
                found_work.set()
        except Exception as error:
            log_unexpected(log, "enqueueing requested schedule runs failed", error, error_text)
        now = adapter.backend.clock()
        minute = now.replace(second=0, microsecond=0)
        if minute != checked:
            try:
                ids = await enqueue_due(adapter, schedules, now)
                checked = minute
                if ids:
                    log.info("enqueued %d scheduled jobs at %s", len(ids), now.isoformat())
                    found_work.set()
            except Exception as error:  # a schedule loop that dies would silently stop ticks
                what = "enqueueing due schedule ticks failed; trying again"
                log_unexpected(log, what, error, error_text)
        boundary = (minute + timedelta(minutes=1) - now).total_seconds()
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), max(0.0, min(boundary, SCHEDULE_RECHECK_SECONDS)))
