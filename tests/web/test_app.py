"""The dashboard over HTTP (in-process ASGI): tokens, tenant scoping, CSRF, escaping and
actions recorded with who made them. The real-browser tests are in test_chromium.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from dogqueue import FakeClock, Job, QueueAdapter, Schedule, enqueue_due
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.core.events import Canceled, Requeued
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.core.workers import WorkerPresence
from dogqueue.web import TokenStore, create_app
from tests.web.workload import (
    ACME_TOKEN,
    ADMIN_TOKEN,
    GLOBEX_TOKEN,
    HOSTILE,
    TOKENS_TEXT,
    Workload,
    populate,
)

BASE = "http://127.0.0.1:8080"


@pytest.fixture(params=["sqlite", "memory"])
async def queue(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[EngineBackend, Workload]]:
    """SQLite (its SqliteBrowser) and memory (the projection's browser); every browser,
    PostgreSQL's too, is checked against the core in test_job_browser.py."""
    backend: EngineBackend = (
        SqliteBackend(tmp_path / "queue.db") if request.param == "sqlite" else MemoryBackend()
    )
    async with backend:
        yield backend, await populate(backend)


def client(backend: EngineBackend, token: str | None = None) -> httpx.AsyncClient:
    app = create_app(backend, TokenStore.parse(TOKENS_TEXT))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, headers=headers)


def same_page(html: str) -> str:
    """The page without its per-response script nonce."""
    return re.sub(r'nonce="[^"]+"', "", html)


def job_url(tenant: str, job_id: str) -> str:
    return f"/tenants/{tenant}/jobs/{job_id}"


async def login(http: httpx.AsyncClient, token: str) -> str:
    """Log in through the form; return the session's CSRF token from a page."""
    answer = await http.post("/login", data={"token": token}, headers={"Origin": BASE})
    assert answer.status_code == 303
    page = await http.get("/jobs")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


async def test_no_token_is_401_and_a_wrong_token_too(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, jobs = queue
    for token in (None, "not-a-valid-token-at-all"):
        async with client(backend, token) as http:
            for path in ("/", "/jobs", job_url("acme", jobs.acme_dead), "/partials/overview"):
                answer = await http.get(path)
                assert answer.status_code == 401, path
                assert "Log in" in answer.text


async def test_tenant_token_sees_only_its_tenant_and_others_jobs_are_404_like_unknown(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, jobs = queue
    async with client(backend, ACME_TOKEN) as http:
        own = await http.get(job_url("acme", jobs.acme_dead))
        assert own.status_code == 200
        other = await http.get(job_url("globex", jobs.globex_waiting))
        unknown = await http.get(job_url("acme", "00000000-0000-7000-8000-000000000000"))
        unknown_tenant = await http.get(job_url("nobody", jobs.globex_waiting))
        assert other.status_code == unknown.status_code == unknown_tenant.status_code == 404
        assert same_page(other.text) == same_page(unknown.text) == same_page(unknown_tenant.text)
        # nor can it reach the job through its own tenant's path
        assert (await http.get(job_url("acme", jobs.globex_waiting))).status_code == 404
        listing = await http.get("/jobs")
        assert jobs.acme_waiting in listing.text and jobs.globex_waiting not in listing.text
        assert (await http.get("/tenants/globex/jobs")).status_code == 404
        overview = await http.get("/")
        assert 'data-tenant="acme"' in overview.text
        assert 'data-tenant="globex"' not in overview.text
        cancel = await http.post(job_url("globex", jobs.globex_waiting) + "/cancel")
        assert cancel.status_code == 404
    status = await backend.get_status(QueueCtx("globex"), jobs.globex_waiting)
    assert status is JobStatus.ENQUEUED
    async with client(backend, ADMIN_TOKEN) as http:
        listing = await http.get("/jobs")
        assert jobs.acme_waiting in listing.text and jobs.globex_waiting in listing.text


async def test_stored_html_and_terminal_escapes_are_shown_as_text(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, jobs = queue
    async with client(backend, ADMIN_TOKEN) as http:
        for path in (job_url("acme", jobs.acme_dead), "/jobs?status=failed"):
            page = (await http.get(path)).text
            assert "<script>window" not in page and "<img src=x" not in page
            assert "\x1b" not in page and "\x07" not in page
            assert "&lt;script&gt;" in page and "\\x1b[31m" in page
        answer = await http.get(job_url("acme", jobs.acme_dead))
        assert "script-src 'nonce-" in answer.headers["content-security-policy"]
    assert HOSTILE not in page


async def test_browser_posts_need_the_csrf_token_and_same_origin(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, jobs = queue
    url = job_url("acme", jobs.acme_waiting) + "/cancel"
    async with client(backend) as http:
        csrf = await login(http, ADMIN_TOKEN)
        assert (await http.post(url, data={})).status_code == 403
        assert (await http.post(url, data={"csrf": "forged"})).status_code == 403
        evil = {"Origin": "http://evil.example"}
        assert (await http.post(url, data={"csrf": csrf}, headers=evil)).status_code == 403
        assert await backend.get_status(QueueCtx("acme"), jobs.acme_waiting) is (JobStatus.ENQUEUED)
        answer = await http.post(url, data={"csrf": csrf}, headers={"Origin": BASE})
        assert answer.status_code == 303
    history = await backend.history(QueueCtx("acme"), jobs.acme_waiting)
    assert isinstance(history[-1], Canceled) and history[-1].actor == "web:ops"


async def test_session_cookie_is_http_only_strict_and_the_token_never_in_a_url(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, _ = queue
    async with client(backend) as http:
        answer = await http.post("/login", data={"token": ADMIN_TOKEN})
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert ADMIN_TOKEN not in answer.headers["set-cookie"]
        assert ADMIN_TOKEN not in answer.headers["location"]
        page = await http.get("/")
        assert ADMIN_TOKEN not in page.text


async def test_retry_and_requeue_by_filter_are_recorded_with_the_actor(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, jobs = queue
    acme = QueueCtx("acme")
    async with client(backend, ACME_TOKEN) as http:
        await http.post(job_url("acme", jobs.acme_waiting) + "/cancel")
        answer = await http.post("/tenants/acme/requeue", data={"type": "email"})
        assert answer.status_code == 303 and "requeued+1+jobs" in answer.headers["location"]
        assert await backend.get_status(acme, jobs.acme_dead) is JobStatus.FAILED
        answer = await http.post(job_url("acme", jobs.acme_dead) + "/retry")
        assert answer.status_code == 303
    for job_id in (jobs.acme_waiting, jobs.acme_dead):
        last = (await backend.history(acme, job_id))[-1]
        assert isinstance(last, Requeued) and last.actor == "web:acme-ops"
    assert await backend.get_status(acme, jobs.acme_done) is JobStatus.COMPLETED


async def test_job_page_shows_timeline_explain_payload_and_result(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, jobs = queue
    async with client(backend, GLOBEX_TOKEN) as http:
        page = (await http.get(job_url("globex", jobs.globex_waiting))).text
        assert "event-enqueued" in page and 'id="explain"' in page and "ready" in page
    async with client(backend, ADMIN_TOKEN) as http:
        page = (await http.get(job_url("acme", jobs.acme_done))).text
        assert 'id="result"' in page and "&#34;ok&#34;" in page
        assert "event-leased" in page and "event-completed" in page
        listing = (await http.get("/tenants/acme/jobs?q=order-")).text
        assert jobs.acme_dead in listing and jobs.acme_done not in listing


async def test_the_timeline_folds_a_runs_heartbeats_and_shows_progress_escaped(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, _ = queue
    ctx = QueueCtx("acme")
    job_id = await backend.enqueue(ctx, JobMessage(job_type="export", payload_bytes=b"{}"))
    lease = None
    while lease is None or lease.job_id != job_id:
        lease = await backend.dequeue(ctx, ["default"])
        assert lease is not None
    await backend.heartbeat(ctx, lease, progress=0.1)
    await backend.heartbeat(ctx, lease, progress=0.4, progress_message="<b>row</b> 40\x1b[0m")
    await backend.heartbeat(ctx, lease)  # no progress: the latest reported one stays
    async with client(backend, ADMIN_TOKEN) as http:
        page = (await http.get(job_url("acme", job_id))).text
    assert page.count("event-heartbeat") == 1
    assert "3 heartbeats, last " in page
    assert "progress 40% (&lt;b&gt;row&lt;/b&gt; 40\\x1b[0m)" in page


async def test_job_pages_show_a_workflows_parents_and_dependents(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, _ = queue
    ctx = QueueCtx("acme")
    part = JobMessage(job_type="step", payload_bytes=b"{}")
    first, second, fan_in = await backend.enqueue_many(
        ctx, [part, part, JobMessage(job_type="report", payload_bytes=b"{}", after_earlier=(0, 1))]
    )
    async with client(backend, ACME_TOKEN) as http:
        parent_page = (await http.get(job_url("acme", first))).text
        assert 'id="workflow"' in parent_page and job_url("acme", fan_in) in parent_page
        assert "runs before" in parent_page and "status-waiting" in parent_page
        child_page = (await http.get(job_url("acme", fan_in))).text
        assert child_page.count('class="parent"') == 2
        assert job_url("acme", first) in child_page and job_url("acme", second) in child_page
        assert "waiting for 2 of 2 parents" in child_page
        plain = (await http.get(job_url("acme", (await backend.enqueue(ctx, part))))).text
        assert 'id="workflow"' not in plain


async def test_the_schedules_page_shows_ticks_from_the_log_within_the_tenant(
    tmp_path: Path,
) -> None:
    class Nightly(Job[None, None]):
        JOB_TYPE = "nightly"

        async def execute(self, ctx: None) -> None:
            return None

    clock = FakeClock(datetime(2030, 3, 1, 2, 30, tzinfo=UTC))
    schedules = [
        Schedule("nightly", "30 2 * * *", Nightly(), tenant="acme"),
        Schedule("hourly", "@hourly", Nightly(), tenant="globex", timezone="Europe/Berlin"),
    ]
    async with SqliteBackend(tmp_path / "q.db", clock=clock) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(Nightly)
        (tick_job,) = await enqueue_due(adapter, schedules[:1])
        clock.advance(timedelta(minutes=5))
        app = create_app(backend, TokenStore.parse(TOKENS_TEXT), schedules=schedules)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http:
            page = (await http.get("/schedules")).text
        rows = re.findall(r'<tr class="schedule"[^>]*>(.*?)</tr>', page, re.S)
        assert len(rows) == 2
        assert job_url("acme", tick_job) in rows[0] and "2030-03-01 02:30" in rows[0]
        assert "2030-03-02 02:30" in rows[0]  # the next tick
        assert "never" in rows[1] and "Europe/Berlin" in rows[1]
        headers = {"Authorization": f"Bearer {GLOBEX_TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http:
            scoped = (await http.get("/schedules")).text
        assert "nightly" not in scoped and tick_job not in scoped and "hourly" in scoped
        bare = create_app(backend, TokenStore.parse(TOKENS_TEXT))
        transport = httpx.ASGITransport(app=bare)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http:
            assert "--schedules" in (await http.get("/schedules")).text


async def test_the_overview_counts_waiting_jobs_and_explains_dead_letters(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, jobs = queue
    step = JobMessage(job_type="email", payload_bytes=b"{}", after=(jobs.acme_waiting,))
    child = await backend.enqueue(QueueCtx("acme"), step)
    assert await backend.get_status(QueueCtx("acme"), child) is JobStatus.WAITING
    async with client(backend, ADMIN_TOKEN) as http:
        page = (await http.get("/")).text
    acme = page[page.index('data-tenant="acme"') :]
    acme = acme[: acme.index("</tr>")]
    assert re.search(r'class="waiting"><a href="[^"]*status=waiting">1</a>', acme), acme
    assert "<th>waiting</th>" in page and 'id="dead-letters-explained"' in page
    assert "so it can exceed <b>dead letters</b>" in page


def announced(worker_id: str, tenants: tuple[str, ...] | None, **changes: object) -> WorkerPresence:
    now = datetime.now(UTC)
    record = WorkerPresence(
        worker_id=worker_id,
        host="web-1",
        pid=7,
        queues=("default",),
        tenants=tenants,
        concurrency=4,
        running=3,
        version="9.9",
        started_at=now,
        last_seen=now,
    )
    return msgspec.structs.replace(record, **changes)


async def test_the_workers_page_lists_the_workers_that_serve_the_principals_tenants(
    queue: tuple[EngineBackend, Workload],
) -> None:
    backend, _ = queue
    await backend.announce_worker(announced("every-tenant", None))
    await backend.announce_worker(announced("acme-only", ("acme",)))
    await backend.announce_worker(
        announced("globex-only", ("globex",), stopped_at=datetime.now(UTC))
    )
    async with client(backend, ADMIN_TOKEN) as http:
        admin = (await http.get("/workers")).text
    async with client(backend, ACME_TOKEN) as http:
        acme = (await http.get("/workers")).text
    rows = re.findall(r'<tr class="worker worker-(\w+)" data-worker="([^"]+)"', admin)
    assert sorted(rows) == [
        ("live", "acme-only"),
        ("live", "every-tenant"),
        ("stopped", "globex-only"),
    ]
    assert '<td class="running">3 of 4</td>' in admin and '<td class="running">0 of 4</td>' in admin
    assert "every-tenant" in acme and "acme-only" in acme and "globex-only" not in acme
