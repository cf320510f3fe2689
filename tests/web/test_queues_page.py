"""The queues page over HTTP (in-process ASGI): per-tenant queue figures from the same
rules as `stats`, paused or not, pause and resume with the session's CSRF token,
tenant scoping, and the all-tenant pause for administrators only. The overview shows
paused queues. The real-browser run is in test_chromium_queues.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from dogqueue import FakeClock, Job, Schedule
from dogqueue.audit.api import job_stats
from dogqueue.backend.base import EngineBackend
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.controls import ALL_TENANTS_CTX, pause_queue, read_controls
from dogqueue.core.events import QueuePaused
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.web import TokenStore, create_app
from tests.web.test_app import client, login
from tests.web.workload import (
    ACME_TOKEN,
    ADMIN_TOKEN,
    GLOBEX_TOKEN,
    TOKENS_TEXT,
    Workload,
    populate,
)

BASE = "http://127.0.0.1:8080"
ACME = QueueCtx("acme")


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[tuple[EngineBackend, FakeClock, Workload]]:
    clock = FakeClock()
    async with SqliteBackend(tmp_path / "queue.db", clock=clock) as backend:
        jobs = await populate(backend)
        await backend.enqueue(ACME, JobMessage(job_type="mail", payload_bytes=b"{}", queue="mail"))
        clock.advance(timedelta(seconds=90))
        yield backend, clock, jobs


def row(html: str, tenant: str, queue: str) -> str:
    section = html.split(f'data-tenant="{tenant}"', 1)[1].split("</section>", 1)[0]
    return section.split(f'data-queue="{queue}"', 1)[1].split("</tr>", 1)[0]


def cell(html: str, name: str) -> str:
    match = re.search(rf'<td class="{name}">(.*?)</td>', html, re.S)
    assert match is not None, name
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


async def test_queue_figures_follow_the_stats_rules(
    queue: tuple[EngineBackend, FakeClock, Workload],
) -> None:
    backend, clock, _ = queue
    async with client(backend, ADMIN_TOKEN) as http:
        page = (await http.get("/queues")).text
    default = row(page, "acme", "default")
    stats = job_stats(
        [j for j in await backend.log_reader().jobs("acme") if j.message.queue == "default"],
        clock(),
    )
    assert cell(default, "ready") == "1"
    assert cell(default, "completed") == "1" and cell(default, "failed") == "1"
    assert cell(default, "oldest") == f"{stats['oldest_ready_age_seconds']:.0f}s" == "90s"
    assert cell(default, "state") == "running"
    assert cell(row(page, "acme", "mail"), "ready") == "1"
    assert 'data-tenant="globex"' in page


async def test_a_session_pauses_and_resumes_with_its_csrf_token(
    queue: tuple[EngineBackend, FakeClock, Workload],
) -> None:
    backend, _, _ = queue
    async with client(backend) as http:
        csrf = await login(http, ACME_TOKEN)
        forged = await http.post("/tenants/acme/queues/mail/pause", data={"csrf": "wrong"})
        assert forged.status_code == 403
        assert (await read_controls(backend, ACME)).paused_queues == frozenset()
        answer = await http.post("/tenants/acme/queues/mail/pause", data={"csrf": csrf})
        assert answer.status_code == 303
        page = (await http.get(answer.headers["location"])).text
        assert "paused mail of acme" in page
        assert cell(row(page, "acme", "mail"), "state") == "paused"
        overview = (await http.get("/")).text
        assert re.search(r'<td class="paused"><a [^>]+>mail</a>', overview)
        await http.post("/tenants/acme/queues/mail/resume", data={"csrf": csrf})
        assert (await read_controls(backend, ACME)).paused_queues == frozenset()
        # Another tenant's queue is not this session's to pause.
        other = await http.post("/tenants/globex/queues/default/pause", data={"csrf": csrf})
        assert other.status_code == 404
        everyone = await http.post("/queues/all-tenants/pause", data={"csrf": csrf, "queue": "x"})
        assert everyone.status_code == 404
    events = [e for e in await backend.read_events() if isinstance(e, QueuePaused)]
    assert [(e.tenant_id, e.queue, e.actor) for e in events] == [("acme", "mail", "web:acme-ops")]


async def test_an_admin_pauses_a_queue_for_every_tenant(
    queue: tuple[EngineBackend, FakeClock, Workload],
) -> None:
    backend, _, _ = queue
    async with client(backend, GLOBEX_TOKEN) as http:
        assert "all-tenants" not in (await http.get("/queues")).text
    async with client(backend) as http:
        csrf = await login(http, ADMIN_TOKEN)
        answer = await http.post(
            "/queues/all-tenants/pause", data={"csrf": csrf, "queue": "default"}
        )
        assert answer.status_code == 303
        page = (await http.get("/queues")).text
    assert (await read_controls(backend, ALL_TENANTS_CTX)).paused_queues == {"default"}
    for tenant in ("acme", "globex"):
        assert cell(row(page, tenant, "default"), "state") == "paused (all tenants)"
    assert 'class="resume-all"' in page


async def test_a_paused_queue_without_jobs_is_listed(
    queue: tuple[EngineBackend, FakeClock, Workload],
) -> None:
    backend, _, _ = queue
    await pause_queue(backend, QueueCtx("globex"), "reports")
    async with client(backend, GLOBEX_TOKEN) as http:
        page = (await http.get("/queues")).text
    assert cell(row(page, "globex", "reports"), "state") == "paused"
    assert 'data-tenant="acme"' not in page


async def test_schedule_buttons_pause_resume_and_run_now(
    queue: tuple[EngineBackend, FakeClock, Workload],
) -> None:
    backend, _, _ = queue

    class Nightly(Job[None, None]):
        JOB_TYPE = "nightly"

        async def execute(self) -> None:
            return None

    schedules = [
        Schedule("nightly", "30 2 * * *", Nightly(), tenant="acme"),
        Schedule("hourly", "@hourly", Nightly(), tenant="globex"),
    ]
    app = create_app(backend, TokenStore.parse(TOKENS_TEXT), schedules=schedules)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        csrf = await login(http, ACME_TOKEN)
        paused = await http.post("/tenants/acme/schedules/nightly/pause", data={"csrf": csrf})
        assert paused.status_code == 303
        page = (await http.get(paused.headers["location"])).text
        assert "paused nightly of acme" in page
        assert cell(page.split('data-schedule="nightly"')[1], "state") == "paused"
        ran = await http.post("/tenants/acme/schedules/nightly/run-now", data={"csrf": csrf})
        assert "asked a worker to run nightly" in (await http.get(ran.headers["location"])).text
        other = await http.post("/tenants/globex/schedules/hourly/pause", data={"csrf": csrf})
        assert other.status_code == 404
        bad = await http.post("/tenants/acme/schedules/a@b/pause", data={"csrf": csrf})
        assert bad.status_code == 400
    controls = await read_controls(backend, ACME)
    assert controls.paused_schedules == {"nightly"}
    assert controls.run_requests == (("nightly", 2),)
    assert (await read_controls(backend, QueueCtx("globex"))).paused_schedules == frozenset()
