"""The workers page's rows: the presence records of the last hour a principal may see."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dogqueue.backend.contract import Backend
from dogqueue.core.workers import RECENT, worker_state
from dogqueue.web.auth import Principal


async def worker_rows(
    backend: Backend, principal: Principal, now: datetime
) -> list[dict[str, Any]]:
    """Each worker seen within RECENT with its state at `now`. A tenant sees the workers
    that serve it, including those that serve every tenant."""
    found = await backend.read_workers(seen_since=now - RECENT)
    return [
        {"worker": worker, "state": worker_state(worker, now).value}
        for worker in found
        if worker.tenants is None or any(principal.may_see(t) for t in worker.tenants)
    ]
