"""The queues page in a real Chromium, served by `dogqueue web`: a queue paused with its
button stops a worker leasing from it, the overview shows it paused, and the resume
button lets the worker take the job; an admin pauses a queue for every tenant."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from dogqueue import Job, JobStatus, QueueAdapter, QueueCtx, Worker
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.controls import ALL_TENANTS_CTX, read_controls
from tests.runtime.helpers import until_status
from tests.web.test_chromium import (  # noqa: F401 (fixtures)
    Served,
    browser,
    open_page,
    screenshot,
    script_errors,
    served,
    shots,
)
from tests.web.workload import ADMIN_TOKEN

ACME = QueueCtx("acme")


class Mail(Job[None, None]):
    JOB_TYPE = "mail"

    async def execute(self, ctx: None) -> None:
        return None


async def test_pause_and_resume_a_queue_from_the_page_while_a_worker_runs(
    served: Served,  # noqa: F811
    browser: Browser,  # noqa: F811
    script_errors: list[str],  # noqa: F811
    shots: Path,  # noqa: F811
) -> None:
    async with SqliteBackend(served.db) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        await adapter.register_job(Mail)
        job = await adapter.enqueue(ACME, Mail(), queue="mail")
        page = await open_page(browser, served.url, ADMIN_TOKEN, script_errors)
        await page.click("text=Queues")
        await expect(page.locator("h1")).to_have_text("Queues")
        mail = page.locator('section[data-tenant="acme"] tr[data-queue="mail"]')
        await expect(mail.locator(".ready")).to_have_text("1")
        await expect(mail.locator(".state")).to_have_text("running")
        await mail.locator("button.pause").click()
        await expect(page.locator("#done")).to_have_text("paused mail of acme")
        await expect(mail.locator(".state")).to_have_text("paused")
        await page.fill("#pause-all-queue", "reports")
        await page.click("#pause-all")
        await expect(page.locator(".paused-everywhere")).to_have_text("reports")
        await screenshot(page, "web-queues", shots)
        assert (await read_controls(backend, ALL_TENANTS_CTX)).paused_queues == {"reports"}

        async with Worker(adapter, tenants=[ACME], queues=["mail"], handle_signals=False):
            await page.click("text=Overview")
            acme = page.locator('tr[data-tenant="acme"]')
            await expect(acme.locator(".paused")).to_have_text("mail, reports")
            await expect(page.locator("#dead-letters-explained")).to_contain_text(
                "can exceed dead letters"
            )
            await screenshot(page, "web-overview-paused", shots)
            assert await backend.get_status(ACME, job) is JobStatus.ENQUEUED
            await page.click("text=Queues")
            await mail.locator("button.resume").click()
            await expect(page.locator("#done")).to_have_text("resumed mail of acme")
            await expect(mail.locator(".state")).to_have_text("running")
            await until_status(backend, ACME, job, JobStatus.COMPLETED)
