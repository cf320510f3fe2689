"""A worker announcing itself: its presence record, written at start, every
ANNOUNCE_INTERVAL while it runs, and once more when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from importlib import metadata

import msgspec

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import QueueError
from dogqueue.core.workers import ANNOUNCE_INTERVAL, WorkerPresence
from dogqueue.observability.logging import log_unexpected

log = logging.getLogger("dogqueue.worker")


def dogqueue_version() -> str:
    """The installed dogqueue's version ("unknown" in a checkout never installed)."""
    try:
        return metadata.version("dogqueue")
    except metadata.PackageNotFoundError:
        return "unknown"


class Presence:
    """Keeps one worker's presence record current. `describe()` gives what the worker
    serves now (queues, tenants, concurrency, running jobs) on the record of the start."""

    def __init__(
        self,
        backend: Backend,
        describe: Callable[[WorkerPresence], WorkerPresence],
        error_text: bool,
    ) -> None:
        self._backend = backend
        self._describe = describe
        self._error_text = error_text
        host, pid = socket.gethostname(), os.getpid()
        now = backend.clock()
        #: The record as last announced.
        self.record = WorkerPresence(
            worker_id=f"{host}-{pid}-{secrets.token_hex(3)}",
            host=host,
            pid=pid,
            queues=(),
            concurrency=0,
            running=0,
            version=dogqueue_version(),
            started_at=now,
            last_seen=now,
        )

    async def announce(self, *, stopped: bool = False) -> None:
        """Write the record now, as of the backend's clock (errors are logged)."""
        now = self._backend.clock()
        record = msgspec.structs.replace(
            self._describe(self.record), last_seen=now, stopped_at=now if stopped else None
        )
        try:
            await self._backend.announce_worker(record)
        except QueueError as error:
            log_unexpected(log, "announcing the worker failed", error, self._error_text)
            return
        self.record = record

    async def announce_forever(self, wake: asyncio.Event) -> None:
        """Announce every ANNOUNCE_INTERVAL, or at once when `wake` is set."""
        while True:
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), ANNOUNCE_INTERVAL.total_seconds())
            await self.announce()
