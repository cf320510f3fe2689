"""The dashboard's operator controls (`dogqueue.controls`): the queues page (each
tenant's queues with their depth by status, oldest ready age by the core's readiness
rule as `stats` and the metrics count it, throughput, and whether they are paused) with
its pause and resume buttons, and the schedules page's pause, resume and run-now."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from dogqueue import controls
from dogqueue.backend.contract import Backend
from dogqueue.core import validation as check
from dogqueue.core.cron import check_schedule_name
from dogqueue.core.errors import InvalidInput
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.order import earliest_ready_since, is_ready
from dogqueue.core.status import JobStatus
from dogqueue.web.auth import Principal
from dogqueue.web.inputs import path_segment

if TYPE_CHECKING:
    from dogqueue.web.app import Dashboard

#: Where a schedule's buttons post (pause, resume, run-now).
SCHEDULE_ACTION = "/tenants/{tenant}/schedules/{name}/{action:str}"
#: What each schedule button does, and how the page says it did it.
SCHEDULE_CALLS = {
    "pause": (controls.pause_schedule, "paused"),
    "resume": (controls.resume_schedule, "resumed"),
    "run-now": (controls.run_schedule_now, "asked a worker to run"),
}
#: Throughput is completions per minute over this window (finished_at in the projection).
THROUGHPUT_WINDOW = timedelta(minutes=10)


@dataclass
class QueueRow:
    """One queue of one tenant as the page shows it."""

    queue: str
    counts: Counter[JobStatus] = field(default_factory=Counter)
    ready: int = 0
    oldest_ready_at: datetime | None = None
    done_recently: int = 0
    #: "tenant", "all tenants", or None when it is not paused.
    paused_by: str | None = None

    @property
    def scheduled(self) -> int:
        """Enqueued jobs due later."""
        return self.counts[JobStatus.ENQUEUED] - self.ready

    @property
    def per_minute(self) -> float:
        """Completions per minute over THROUGHPUT_WINDOW."""
        return self.done_recently / (THROUGHPUT_WINDOW.total_seconds() / 60)


def queue_rows(
    jobs: list[JobInfo], paused: frozenset[str], everywhere: frozenset[str], now: datetime
) -> list[QueueRow]:
    """One tenant's queues (those with jobs, and the paused ones), by name."""
    rows: dict[str, QueueRow] = {}
    due: dict[str, list[JobInfo]] = {}
    for job in jobs:
        row = rows.setdefault(job.message.queue, QueueRow(job.message.queue))
        row.counts[job.status] += 1
        if is_ready(job, now):
            due.setdefault(row.queue, []).append(job)
        finished = job.finished_at
        if job.status is JobStatus.COMPLETED and finished and now - finished <= THROUGHPUT_WINDOW:
            row.done_recently += 1
    for name in paused | everywhere:
        rows.setdefault(name, QueueRow(name))
    for name, ready in due.items():
        rows[name].ready = len(ready)
        rows[name].oldest_ready_at = earliest_ready_since(sorted(ready, key=lambda j: j.run_at))
    for row in rows.values():
        row.paused_by = (
            "all tenants" if row.queue in everywhere else "tenant" if row.queue in paused else None
        )
    return [rows[name] for name in sorted(rows)]


async def paused_queues(backend: Backend, tenants: list[str]) -> dict[str, list[str]]:
    """Each tenant's paused queues, those paused for every tenant included."""
    everywhere, by_tenant = await controls.read_many_controls(backend, tenants)
    return {
        tenant: sorted(state.paused_queues | everywhere.paused_queues)
        for tenant, state in by_tenant.items()
    }


class QueuePages:
    """The queues page and its pause and resume actions, on a Dashboard's plumbing."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    def routes(self, guarded: Callable[[Any], Any]) -> list[Route]:
        """The page and its actions (POSTs carry the session's CSRF token)."""
        act = "/tenants/{tenant}/queues/{queue}/{action:str}"
        return [
            Route("/queues", guarded(self.page)),
            Route(act, guarded(self.act), methods=["POST"]),
            Route("/queues/all-tenants/{action:str}", guarded(self.act_all), methods=["POST"]),
            Route(SCHEDULE_ACTION, guarded(self.act_schedule), methods=["POST"]),
        ]

    async def page(self, request: Request) -> Response:
        board = self.dashboard
        principal: Principal = request.scope["dogqueue.principal"]
        now = board.now()
        summaries = await board.browser.tenant_overview(now)
        tenants = [s.tenant_id for s in summaries if principal.may_see(s.tenant_id)]
        if principal.tenant_id is not None and principal.tenant_id not in tenants:
            tenants.append(principal.tenant_id)
        all_tenants, by_tenant = await controls.read_many_controls(board.backend, tenants)
        everywhere = all_tenants.paused_queues
        log = board.backend.log_reader(wait_for_own_writes=False)
        sections = []
        for tenant in tenants:
            own = by_tenant[tenant].paused_queues
            rows = queue_rows(await log.jobs(tenant), own, everywhere, now)
            sections.append({"tenant": tenant, "rows": rows})
        return board.render(
            request,
            "queues.html",
            sections=sections,
            everywhere=sorted(everywhere),
            admin=principal.tenant_id is None,
            now=now,
            window_minutes=int(THROUGHPUT_WINDOW.total_seconds() // 60),
            done=request.query_params.get("done"),
        )

    async def act(self, request: Request) -> Response:
        """Pause or resume one tenant's queue."""
        tenant = self.dashboard._tenant(request)
        try:
            queue = check.check_name("queue", path_segment(request, "queue"))
        except InvalidInput as error:
            return self.dashboard._bad_request(request, "Bad queue", error)
        return await self._decide(request, QueueCtx(tenant), queue, f"of {tenant}")

    async def act_all(self, request: Request) -> Response:
        """Pause or resume a queue for every tenant (administrators only)."""
        principal: Principal = request.scope["dogqueue.principal"]
        if principal.tenant_id is not None:
            return self.dashboard.not_found(request)
        form: dict[str, str] = request.scope["dogqueue.form"]
        try:
            queue = check.check_name("queue", form.get("queue", ""))
        except InvalidInput as error:
            return self.dashboard._bad_request(request, "Bad queue", error)
        return await self._decide(request, controls.ALL_TENANTS_CTX, queue, "of every tenant")

    async def _decide(self, request: Request, ctx: QueueCtx, queue: str, whose: str) -> Response:
        principal: Principal = request.scope["dogqueue.principal"]
        action = request.path_params["action"]
        call = {"pause": controls.pause_queue, "resume": controls.resume_queue}.get(action)
        if call is None:
            return self.dashboard.not_found(request)
        changed = await call(self.dashboard.backend, ctx, queue, actor=principal.actor)
        verb = {"pause": "paused", "resume": "resumed"}[action]
        done = f"{verb} {queue} {whose}" if changed else f"{queue} {whose}: nothing changed"
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/queues?done={quote(done)}", status_code=303)

    async def act_schedule(self, request: Request) -> Response:
        """Pause, resume or run now one of the tenant's schedules."""
        tenant = self.dashboard._tenant(request)
        try:
            name = check_schedule_name(path_segment(request, "name"))
        except InvalidInput as error:
            return self.dashboard._bad_request(request, "Bad schedule", error)
        found = SCHEDULE_CALLS.get(request.path_params["action"])
        if found is None:
            return self.dashboard.not_found(request)
        call, verb = found
        actor = request.scope["dogqueue.principal"].actor
        changed = await call(self.dashboard.backend, QueueCtx(tenant), name, actor=actor)
        done = f"{verb} {name} of {tenant}" if changed else f"{name} of {tenant}: nothing changed"
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/schedules?done={quote(done)}", status_code=303)
