"""Tenants whose names hold `/`, `%`, `?` or `#` route: the dashboard's links encode
each path segment, and it routes on the path as sent, so such a tenant's jobs can be
listed, opened, cancelled and retried, under a mount prefix too."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from dogqueue.backend.base import EngineBackend
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.web import TokenStore, create_app
from tests.web.workload import ADMIN_TOKEN, TOKENS_TEXT

NAMES = ["team/a", "a/jobs/b", "100%", "%2F", "what?#", "..x/.."]


def _links(page: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', page)]


@pytest.mark.parametrize("prefix", ["", "/queue"])
async def test_a_tenant_with_a_slash_can_be_seen_and_acted_on(
    backend: EngineBackend, prefix: str
) -> None:
    jobs = {}
    for name in NAMES:
        jobs[name] = await backend.enqueue(
            QueueCtx(name), JobMessage(job_type="report", payload_bytes=b"{}")
        )
    dashboard = create_app(backend, TokenStore.parse(TOKENS_TEXT))
    app = Starlette(routes=[Mount(prefix, app=dashboard)]) if prefix else dashboard
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dash", headers=headers
    ) as http:
        overview = await http.get(f"{prefix}/")
        assert overview.status_code == 200
        for name in NAMES:
            ctx = QueueCtx(name)
            tenant_link = f"{prefix}/tenants/{quote(name, safe='')}/jobs"
            assert tenant_link in _links(overview.text)
            listing = await http.get(tenant_link)
            assert listing.status_code == 200, (name, tenant_link)
            [job_link] = [link for link in _links(listing.text) if jobs[name] in link]
            page = await http.get(job_link)
            assert page.status_code == 200 and jobs[name] in page.text, (name, job_link)
            assert (await http.post(f"{job_link}/cancel")).status_code == 303
            assert (await backend.get_job(ctx, jobs[name])).status is JobStatus.CANCELED
            assert (await http.post(f"{job_link}/retry")).status_code == 303
            assert (await backend.get_job(ctx, jobs[name])).status is JobStatus.ENQUEUED
