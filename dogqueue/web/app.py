"""The dashboard as an ASGI app: server-rendered pages, polled partials, and actions
that go through the Backend contract and are recorded with who did them."""

from __future__ import annotations

import contextlib
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from dogqueue.audit.explain import explain
from dogqueue.audit.timeline import Heartbeats, TimelineRow, runs, timeline
from dogqueue.backend.browse import JobBrowser, JobFilter, TenantSummary, all_matching
from dogqueue.backend.contract import Backend
from dogqueue.clock import Clock
from dogqueue.core import validation as check
from dogqueue.core.errors import InvalidInput, InvalidTransition, JobNotFound
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.display import one_line, visible
from dogqueue.schedules import Schedule, paused_schedules
from dogqueue.web.activity import RecentActivity
from dogqueue.web.auth import Principal, Session, TokenStore, csrf_matches
from dogqueue.web.inputs import (
    BodyTooLarge,
    EncodedPathRouting,
    parse_list_query,
    path_segment,
    read_form,
)
from dogqueue.web.queues import QueuePages, paused_queues
from dogqueue.web.workers import worker_rows

#: The session cookie's name.
COOKIE = "dogqueue_session"
#: Bytes of a payload or result shown on a job page.
SHOWN_BYTES = 4_096
#: Jobs a requeue-by-filter changes at most per request.
MAX_BULK = 10_000
PAGE_SIZE = 50
#: Parents and dependents listed on a job page (a fan-in may have thousands).
FAMILY_SHOWN = 50
#: Overview samples kept per tenant (the charts' span).
SAMPLES_KEPT = 120

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Sample:
    """One tenant's summary at one moment, a point of the overview charts."""

    at: datetime
    summary: TenantSummary


class Sampler:
    """The overview's recent history, sampled at most every `interval` when the overview
    is read (the page polls it), so the charts cover the time the dashboard was watched."""

    def __init__(self, interval: timedelta) -> None:
        self.interval = interval
        self.series: dict[str, deque[Sample]] = {}
        self._last: datetime | None = None

    def record(self, summaries: list[TenantSummary], now: datetime) -> None:
        """Keep `summaries` if the last sample is older than the interval."""
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        for summary in summaries:
            series = self.series.setdefault(summary.tenant_id, deque(maxlen=SAMPLES_KEPT))
            series.append(Sample(now, summary))

    def chart(self, tenant_id: str, metric: Callable[[TenantSummary], int]) -> str:
        """SVG polyline points of `metric` over the samples (100x24 box)."""
        return chart_points([metric(sample.summary) for sample in self.series.get(tenant_id, ())])


def chart_points(values: list[int]) -> str:
    """SVG polyline points of `values` spread over a 100x24 box ("" for none)."""
    if not values:
        return ""
    top = max(max(values), 1)
    step = 100 / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{24 - 22 * value / top:.1f}" for i, value in enumerate(values))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dogqueue.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["visible"] = visible
    env.filters["one_line"] = one_line
    env.filters["part"] = lambda text: quote(str(text), safe="")
    env.filters["when"] = _when
    env.filters["ago"] = lambda moment, now: _ago(now, moment)
    return env


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).isoformat(" ", "milliseconds")


def _ago(now: datetime, moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = max(int((now - moment).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _shown(data: bytes | None) -> str | None:
    """At most SHOWN_BYTES of stored bytes as text (made visible by the template)."""
    if data is None:
        return None
    text = data[:SHOWN_BYTES].decode("utf-8", errors="replace")
    if len(data) > SHOWN_BYTES:
        text += f"\n… ({len(data) - SHOWN_BYTES} more bytes not shown)"
    return text


def event_row(row: TimelineRow) -> dict[str, Any]:
    """The timeline columns of one row (absent fields are None): an event, or a run's
    heartbeats folded (`heartbeats` holds their summary)."""
    event = row.event
    if isinstance(event, Heartbeats):
        return {
            "type": "heartbeats",
            "at": event.last.at,
            "version": f"{event.first.version}-{event.last.version}",
            "seq": event.last.seq,
            "run": row.run,
            "token": event.last.token,
            "expires_at": event.last.expires_at,
            "heartbeats": str(event),
            **dict.fromkeys(("error", "retry_at", "actor")),
        }
    fields = {
        name: getattr(event, name, None)
        for name in ("token", "error", "retry_at", "expires_at", "actor")
    }
    return {
        "type": event.type,
        "at": event.at,
        "version": event.version,
        "seq": event.seq,
        "run": row.run if "token" in event.__struct_fields__ else None,
        "heartbeats": None,
        **fields,
    }


def _filter_query(filters: JobFilter) -> dict[str, str]:
    query = {
        "status": ",".join(sorted(filters.statuses)),
        "type": filters.job_type or "",
        "queue": filters.queue or "",
        "after": filters.created_after.isoformat() if filters.created_after else "",
        "before": filters.created_before.isoformat() if filters.created_before else "",
        "q": filters.search or "",
    }
    return {key: value for key, value in query.items() if value}


def create_app(
    backend: Backend,
    tokens: TokenStore,
    *,
    browser: JobBrowser | None = None,
    clock: Clock | None = None,
    poll_seconds: float = 2.0,
    sample_every: timedelta = timedelta(seconds=5),
    schedules: Sequence[Schedule] = (),
) -> Starlette:
    """The dashboard for `backend`, guarded by `tokens`; mount it anywhere (the caller
    opens and closes the backend). Pages poll for changes every `poll_seconds`. The
    schedules page shows `schedules` (those your workers run) with their ticks in the log."""
    return Dashboard(
        backend,
        tokens,
        browser or backend.browser(),
        clock or backend.clock,
        poll_seconds,
        Sampler(sample_every),
        schedules,
    ).app


class _Refused(Exception):
    """Stop handling a request with this response."""

    def __init__(self, response: Response) -> None:
        self.response = response


class Dashboard:
    """The routes and their shared state."""

    def __init__(
        self,
        backend: Backend,
        tokens: TokenStore,
        browser: JobBrowser,
        clock: Clock,
        poll_seconds: float,
        sampler: Sampler,
        schedules: Sequence[Schedule] = (),
    ) -> None:
        self.backend, self.tokens, self.browser = backend, tokens, browser
        self.clock, self.poll_ms, self.sampler = clock, int(poll_seconds * 1000), sampler
        self.env = _environment()
        self.schedules = list(schedules)
        self.activity = RecentActivity()
        guarded = self._guarded
        self.app = Starlette(
            routes=[
                Route("/login", self.login_form, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", guarded(self.logout), methods=["POST"]),
                Route("/", guarded(self.overview)),
                Route("/partials/overview", guarded(self.overview_partial)),
                Route("/jobs", guarded(self.all_jobs)),
                Route("/schedules", guarded(self.schedules_page)),
                Route("/workers", guarded(self.workers_page)),
                *QueuePages(self).routes(guarded),
                Route("/tenants/{tenant}/jobs", guarded(self.tenant_jobs)),
                Route("/tenants/{tenant}/requeue", guarded(self.requeue), methods=["POST"]),
                Route("/tenants/{tenant}/jobs/{job_id}", guarded(self.job_page)),
                Route("/tenants/{tenant}/jobs/{job_id}/live", guarded(self.job_live)),
                Route(
                    "/tenants/{tenant}/jobs/{job_id}/cancel",
                    guarded(self.cancel),
                    methods=["POST"],
                ),
                Route(
                    "/tenants/{tenant}/jobs/{job_id}/retry", guarded(self.retry), methods=["POST"]
                ),
            ],
            middleware=[Middleware(EncodedPathRouting)],
        )

    # -- plumbing --------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page with a per-response script nonce and a strict content policy."""
        nonce = secrets.token_urlsafe(16)
        session: Session | None = request.scope.get("dogqueue.session")
        principal: Principal | None = request.scope.get("dogqueue.principal")
        html = self.env.get_template(template).render(
            base=request.scope.get("root_path", ""),
            nonce=nonce,
            csrf=session.csrf_token if session else None,
            principal=principal,
            poll_ms=self.poll_ms,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}';"
            " connect-src 'self'; img-src 'self' data:; form-action 'self';"
            " frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes Origin null
        response.headers["Cache-Control"] = "no-store"
        return response

    def not_found(self, request: Request) -> Response:
        """The one answer for an unknown job and for a job the caller may not see."""
        return self.render(request, "not_found.html", status_code=404)

    def _guarded(self, handler: Handler) -> Handler:
        """Require a token (401 without one) and, for POSTs from a browser session, the
        session's CSRF token and a same-origin request (403 otherwise)."""

        async def run(request: Request) -> Response:
            principal, session = self._identify(request)
            if principal is None:
                return self.render(request, "login.html", status_code=401, error=None)
            request.scope["dogqueue.principal"] = principal
            request.scope["dogqueue.session"] = session
            try:
                if request.method == "POST":
                    form = await self._read_form(request)
                    request.scope["dogqueue.form"] = form
                    if session is not None and not (
                        self._same_origin(request) and csrf_matches(session, form.get("csrf"))
                    ):
                        return self.render(
                            request,
                            "message.html",
                            403,
                            title="Forbidden",
                            text="The form was not sent by this dashboard.",
                        )
                return await handler(request)
            except _Refused as refused:
                return refused.response

        return run

    def _identify(self, request: Request) -> tuple[Principal | None, Session | None]:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            return self.tokens.principal(header[7:].strip()), None
        session = self.tokens.session(request.cookies.get(COOKIE))
        return (session.principal, session) if session else (None, None)

    @staticmethod
    def _same_origin(request: Request) -> bool:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin is None:
            return True  # SameSite=Strict already keeps the cookie off cross-site requests
        parts = urlsplit(origin)
        return parts.netloc == request.headers.get("host")

    async def _read_form(self, request: Request) -> dict[str, str]:
        """The request's form, read with a cap (413 beyond it, 400 if malformed)."""
        try:
            return await read_form(request)
        except BodyTooLarge:
            raise _Refused(Response("form too large", status_code=413)) from None
        except InvalidInput as error:
            raise _Refused(self._bad_request(request, "Bad form", error)) from None

    def _bad_request(self, request: Request, title: str, error: InvalidInput) -> Response:
        return self.render(request, "message.html", 400, title=title, text=str(error))

    def _tenant(self, request: Request) -> str:
        """The path's tenant, if the caller may see it; otherwise answer 404."""
        principal: Principal = request.scope["dogqueue.principal"]
        try:
            tenant = check.check_name("tenant_id", path_segment(request, "tenant"))
        except InvalidInput:
            raise _Refused(self.not_found(request)) from None
        if not principal.may_see(tenant):
            raise _Refused(self.not_found(request))
        return tenant

    async def _job(self, request: Request) -> JobInfo:
        tenant = self._tenant(request)
        try:
            job_id = check.check_name("job_id", path_segment(request, "job_id"))
            return await self.backend.get_job(QueueCtx(tenant), job_id)
        except (JobNotFound, InvalidInput):
            raise _Refused(self.not_found(request)) from None

    def _job_url(self, request: Request, job: JobInfo) -> str:
        base = request.scope.get("root_path", "")
        return f"{base}/tenants/{quote(job.tenant_id, safe='')}/jobs/{quote(job.job_id, safe='')}"

    # -- login -----------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        return self.render(request, "login.html", error=None)

    async def login(self, request: Request) -> Response:
        try:
            form = await self._read_form(request)
        except _Refused as refused:
            return refused.response
        if "code" in form:  # a login link's one-time code (the page posts its fragment)
            principal = self.tokens.redeem_login_code(form["code"].strip())
            refusal = "That login link was used already or is too old."
        else:
            principal = self.tokens.principal(form.get("token", "").strip())
            refusal = "That token is not valid."
        if principal is None or not self._same_origin(request):
            return self.render(request, "login.html", 401, error=refusal)
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/", status_code=303)
        response.set_cookie(
            COOKIE,
            self.tokens.open_session(principal),
            path=base or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        self.tokens.close_session(request.cookies.get(COOKIE))
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base or "/")
        return response

    # -- pages -----------------------------------------------------------------------

    async def _overview_context(self, request: Request) -> dict[str, Any]:
        principal: Principal = request.scope["dogqueue.principal"]
        now = self.now()
        summaries = await self.browser.tenant_overview(now)
        self.sampler.record(summaries, now)
        await self.activity.refresh(self.backend, now)
        activity = self.activity
        shown = [s for s in summaries if principal.may_see(s.tenant_id)]
        paused = await paused_queues(self.backend, [s.tenant_id for s in shown])
        rows = [
            {
                "summary": s,
                "oldest": _ago(now, s.oldest_ready_at),
                "rate": activity.completed_per_minute(s.tenant_id, now),
                "new_failures": activity.dead_in_window(s.tenant_id, now),
                "paused": paused[s.tenant_id],
                "charts": {
                    "ready": self.sampler.chart(s.tenant_id, lambda x: x.ready),
                    "leased": self.sampler.chart(s.tenant_id, lambda x: x.leased),
                    "completed": chart_points(activity.per_minute(s.tenant_id, now, "completed")),
                    "dead": chart_points(activity.per_minute(s.tenant_id, now, "dead")),
                },
            }
            for s in shown
        ]
        return {"rows": rows, "now": now, "partial": activity.partial}

    async def overview(self, request: Request) -> Response:
        return self.render(request, "overview.html", **await self._overview_context(request))

    async def overview_partial(self, request: Request) -> Response:
        return self.render(request, "_overview.html", **await self._overview_context(request))

    async def schedules_page(self, request: Request) -> Response:
        principal: Principal = request.scope["dogqueue.principal"]
        now = self.now()
        rows = []
        paused = await paused_schedules(self.backend, self.schedules)
        for schedule in self.schedules:
            if not principal.may_see(schedule.tenant):
                continue
            latest = await self.backend.latest_tick(schedule.ctx, schedule.name)
            last_job = None
            if latest is not None:
                with contextlib.suppress(JobNotFound):  # archived
                    last_job = await self.backend.get_job(schedule.ctx, latest[1])
            rows.append(
                {
                    "schedule": schedule,
                    "last_tick": None if latest is None else latest[0],
                    "last_job_id": None if latest is None else latest[1],
                    "last_job": last_job,
                    "next_tick": schedule.next_tick(now),
                    "paused": (schedule.tenant, schedule.name) in paused,
                }
            )
        done = request.query_params.get("done")
        return self.render(
            request, "schedules.html", rows=rows, defined=bool(self.schedules), done=done
        )

    async def workers_page(self, request: Request) -> Response:
        now = self.now()
        rows = await worker_rows(self.backend, request.scope["dogqueue.principal"], now)
        return self.render(request, "workers.html", rows=rows, now=now)

    async def all_jobs(self, request: Request) -> Response:
        principal: Principal = request.scope["dogqueue.principal"]
        return await self._job_list(request, principal.tenant_id)

    async def tenant_jobs(self, request: Request) -> Response:
        return await self._job_list(request, self._tenant(request))

    async def _job_list(self, request: Request, tenant: str | None) -> Response:
        try:
            parsed = parse_list_query(request.query_params)
            page = await self.browser.list_jobs(tenant, parsed.filters, parsed.cursor, PAGE_SIZE)
        except InvalidInput as error:
            return self._bad_request(request, "Bad filter", error)
        filters = parsed.filters
        query = _filter_query(filters)
        return self.render(
            request,
            "jobs.html",
            tenant=tenant,
            page=page,
            filters=filters,
            query=query,
            next_query=urlencode({**query, "cursor": page.next_cursor})
            if page.next_cursor
            else None,
            statuses=list(JobStatus),
            done=parsed.done,
        )

    async def _job_context(self, request: Request) -> dict[str, Any]:
        job = await self._job(request)
        ctx = QueueCtx(job.tenant_id)
        history = await self.backend.history(ctx, job.job_id)
        now = self.now()
        ahead = await self.browser.jobs_ahead(job, now) if job.status is JobStatus.ENQUEUED else 0
        parents = await self._parents(ctx, job)
        dependents = await self.browser.dependents(job, FAMILY_SHOWN)
        return {
            "job": job,
            "events": [event_row(row) for row in timeline(history)],
            "runs": runs(history),
            "explanation": explain(job, history, now, ahead, [*parents, *dependents]),
            "parents": parents,
            "dependents": dependents,
            "family_shown": FAMILY_SHOWN,
            "payload": _shown(job.message.payload_bytes),
            "result": _shown(job.result),
            "job_url": self._job_url(request, job),
            "terminal": job.status.is_terminal,
        }

    async def _parents(self, ctx: QueueCtx, job: JobInfo) -> list[JobInfo]:
        """The first FAMILY_SHOWN jobs the job runs after (its `after`, in order)."""
        parents = []
        for parent_id in job.message.after[:FAMILY_SHOWN]:
            with contextlib.suppress(JobNotFound):  # archived
                parents.append(await self.backend.get_job(ctx, parent_id))
        return parents

    async def job_page(self, request: Request) -> Response:
        return self.render(request, "job.html", **await self._job_context(request))

    async def job_live(self, request: Request) -> Response:
        return self.render(request, "_job_live.html", **await self._job_context(request))

    # -- actions ---------------------------------------------------------------------

    async def cancel(self, request: Request) -> Response:
        job = await self._job(request)
        principal: Principal = request.scope["dogqueue.principal"]
        await self.backend.cancel_job(QueueCtx(job.tenant_id), job.job_id, actor=principal.actor)
        return RedirectResponse(self._job_url(request, job), status_code=303)

    async def retry(self, request: Request) -> Response:
        job = await self._job(request)
        principal: Principal = request.scope["dogqueue.principal"]
        try:
            await self.backend.retry_job(
                QueueCtx(job.tenant_id), job.job_id, include_canceled=True, actor=principal.actor
            )
        except InvalidTransition as error:
            return self.render(request, "message.html", 409, title="Not retried", text=str(error))
        return RedirectResponse(self._job_url(request, job), status_code=303)

    async def requeue(self, request: Request) -> Response:
        """Put every FAILED or CANCELED job matching the form's filters back in the queue."""
        tenant = self._tenant(request)
        principal: Principal = request.scope["dogqueue.principal"]
        form: dict[str, str] = request.scope["dogqueue.form"]
        try:
            chosen = parse_list_query(form).filters
        except InvalidInput as error:
            return self._bad_request(request, "Bad filter", error)
        dead = {JobStatus.FAILED, JobStatus.CANCELED}
        statuses = (chosen.statuses & dead) if chosen.statuses else frozenset(dead)
        filters = JobFilter(**{**chosen.__dict__, "statuses": statuses})
        matching = await all_matching(self.browser, tenant, filters, MAX_BULK) if statuses else []
        ids = [job.job_id for job in matching]
        ctx = QueueCtx(tenant)
        for job_id in ids:
            try:
                await self.backend.retry_job(
                    ctx, job_id, include_canceled=True, actor=principal.actor
                )
            except InvalidTransition:
                continue  # changed since it was listed
        base = request.scope.get("root_path", "")
        query = urlencode({**_filter_query(chosen), "done": f"requeued {len(ids)} jobs"})
        return RedirectResponse(
            f"{base}/tenants/{quote(tenant, safe='')}/jobs?{query}", status_code=303
        )
