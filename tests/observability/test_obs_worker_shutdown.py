"""A worker process serving --metrics-port exits on SIGTERM even while a scraper holds
an idle connection and another has sent half a request (on Python 3.12.1 and later,
Server.wait_closed() waits for open connections)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from dogqueue import JobStatus, QueueAdapter, QueueCtx
from dogqueue.backend.sqlite import SqliteBackend
from tests.observability.obs_app import Greet, make_adapter
from tests.observability.test_obs_worker import ROOT, _metrics_url
from tests.runtime.helpers import PATIENCE_SECONDS, until_status

ACME = QueueCtx("acme")


async def test_sigterm_ends_the_worker_despite_open_scraper_connections(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    backend = SqliteBackend(db)
    adapter: QueueAdapter[None] = await make_adapter(backend)
    greeted = await adapter.enqueue(ACME, Greet(name="ada"))
    process = subprocess.Popen(  # noqa: ASYNC220 (a long-lived child)
        [
            sys.executable,
            "-m",
            "dogqueue",
            "worker",
            "tests.observability.obs_app:make_adapter",
            "--db",
            str(db),
            "--metrics-port",
            "0",
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    idle = slow = None
    try:
        assert process.stderr is not None
        url = await asyncio.wait_for(
            asyncio.to_thread(_metrics_url, process.stderr, seen), PATIENCE_SECONDS
        )
        # The job done: the worker runs, with its own signal handlers in place.
        await until_status(backend, ACME, greeted, JobStatus.COMPLETED)
        address = urlparse(url)
        assert address.hostname is not None and address.port is not None
        idle = socket.create_connection((address.hostname, address.port))
        slow = socket.create_connection((address.hostname, address.port))
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.to_thread(process.communicate, None, 60)
        for connection in (idle, slow):
            if connection is not None:
                connection.close()
        await backend.close()
    assert process.returncode == 0, "".join(seen) + (rest or "")
