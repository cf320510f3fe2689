"""The dashboard in a real Chromium (Debian's /usr/bin/chromium driven by Playwright),
served by the real `dogqueue web` command: the overview, a job's timeline updating
when a worker completes it, cancel from the page, and tenant scoping.

Set DOGQUEUE_SCREENSHOTS=docs to refresh the README's screenshots."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from dogqueue import QueueAdapter, Worker
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.core.events import Canceled, Completed
from dogqueue.core.message import JobMessage, QueueCtx
from tests.web.workload import ACME_TOKEN, ADMIN_TOKEN, TOKENS_TEXT, Workload, populate

pytestmark = pytest.mark.chromium

#: Debian's package (`.ci/run` installs it); Playwright's own browser download is never used.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Served:
    url: str
    db: Path
    jobs: Workload


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _populate(db: Path) -> Workload:
    async with SqliteBackend(db) as backend:
        return await populate(backend)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`dogqueue web` on a queue with two tenants, in its own process."""
    db = tmp_path / "queue.db"
    jobs = asyncio.run(_populate(db))
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS_TEXT)
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dogqueue",
            "web",
            "--db",
            str(db),
            "--port",
            str(port),
            "--tokens",
            str(tokens),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server)
        yield Served(url, db, jobs)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    log = output.decode()
    # the server's log names requests but never a token
    assert "GET /" in log and ADMIN_TOKEN not in log and ACME_TOKEN not in log


def _wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise RuntimeError(f"dogqueue web exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/login").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # waiting for a process to start, not a timing assertion
    raise RuntimeError("dogqueue web did not start")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
def script_errors() -> Iterator[list[str]]:
    """Errors pages raise or log (a CSP violation would show here); must stay empty."""
    errors: list[str] = []
    yield errors
    assert errors == []


async def open_page(browser: Browser, url: str, token: str, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    await page.goto(f"{url}/login")
    await page.fill("input[name=token]", token)
    await page.click("#login")
    await expect(page.locator("h1")).to_have_text("Tenants")
    return page


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go."""
    folder = Path(os.environ.get("DOGQUEUE_SCREENSHOTS") or tmp_path)
    folder.mkdir(exist_ok=True)
    return folder


async def screenshot(page: Page, name: str, folder: Path) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def test_overview_then_a_job_timeline_updates_live_when_a_worker_completes_it(
    served: Served, browser: Browser, script_errors: list[str], shots: Path
) -> None:
    page = await open_page(browser, served.url, ADMIN_TOKEN, script_errors)
    acme_row = page.locator('tr[data-tenant="acme"]')
    await expect(acme_row.locator(".ready")).to_have_text("1")
    await expect(acme_row.locator(".failed")).to_have_text("1")
    await expect(page.locator('tr[data-tenant="globex"]')).to_have_count(1)
    await screenshot(page, "web-overview", shots)

    await page.click('tr[data-tenant="acme"] a')
    await expect(page.locator("#jobs tbody tr")).to_have_count(3)
    await screenshot(page, "web-jobs", shots)
    await page.click(f"text={served.jobs.acme_waiting}")
    await expect(page.locator("#status")).to_have_text("enqueued")
    await expect(page.locator("#timeline .event")).to_have_count(1)

    acme = QueueCtx("acme")
    async with SqliteBackend(served.db) as worker:
        lease = await worker.dequeue(acme, ["default"], lease_duration=timedelta(minutes=1))
        assert lease is not None and lease.job_id == served.jobs.acme_waiting
        await expect(page.locator("#timeline .event-leased")).to_have_count(1)
        await expect(page.locator("#status")).to_have_text("leased")
        await worker.ack_complete(acme, lease, b'{"sent": true}')
    # no reload: the page polls its timeline
    await expect(page.locator("#timeline .event-completed")).to_have_count(1)
    await expect(page.locator("#status")).to_have_text("completed")
    await expect(page.locator("#result")).to_contain_text('{"sent": true}')
    await screenshot(page, "web-job", shots)


async def test_cancel_from_the_page_is_in_the_log_with_who_did_it(
    served: Served, browser: Browser, script_errors: list[str]
) -> None:
    page = await open_page(browser, served.url, ADMIN_TOKEN, script_errors)
    await page.goto(f"{served.url}/tenants/globex/jobs/{served.jobs.globex_waiting}")
    await page.click("#cancel")
    await expect(page.locator("#status")).to_have_text("canceled")
    await expect(page.locator("#timeline .event-canceled")).to_contain_text("web:ops")
    async with SqliteBackend(served.db) as backend:
        history = await backend.history(QueueCtx("globex"), served.jobs.globex_waiting)
    assert isinstance(history[-1], Canceled) and history[-1].actor == "web:ops"
    assert not any(isinstance(event, Completed) for event in history)


async def test_tenant_token_cannot_see_another_tenants_job(
    served: Served, browser: Browser, script_errors: list[str]
) -> None:
    page = await open_page(browser, served.url, ACME_TOKEN, script_errors)
    await expect(page.locator('tr[data-tenant="globex"]')).to_have_count(0)
    await expect(page.locator('tr[data-tenant="acme"]')).to_have_count(1)
    answer = await page.goto(f"{served.url}/tenants/globex/jobs/{served.jobs.globex_waiting}")
    assert answer is not None and answer.status == 404
    await expect(page.locator("h1")).to_have_text("Not found")
    answer = await page.goto(f"{served.url}/tenants/acme/jobs/{served.jobs.globex_waiting}")
    assert answer is not None and answer.status == 404
    await page.goto(f"{served.url}/jobs")
    await expect(page.locator(f"text={served.jobs.globex_waiting}")).to_have_count(0)
    await expect(page.locator(f"text={served.jobs.acme_dead}")).to_have_count(1)
    # the browser logs the two 404 answers this test asked for; nothing else may show
    script_errors[:] = [error for error in script_errors if "404 (Not Found)" not in error]


async def test_dead_letter_with_hostile_text_is_shown_not_run(
    served: Served, browser: Browser, script_errors: list[str], shots: Path
) -> None:
    page = await open_page(browser, served.url, ADMIN_TOKEN, script_errors)
    await page.click("text=Dead letters")
    await expect(page.locator("#jobs tbody tr")).to_have_count(1)
    await page.click(f"text={served.jobs.acme_dead}")
    await expect(page.locator("#timeline .event-failed .error")).to_contain_text(
        "<script>window.pwned=1</script>"
    )
    await expect(page.locator("#payload")).to_contain_text("\\x1b[31mred\\x07")
    assert await page.evaluate("window.pwned === undefined")
    await screenshot(page, "web-dead-letter", shots)
    await page.click("#retry")
    await expect(page.locator("#status")).to_have_text("enqueued")
    await expect(page.locator("#timeline .event-requeued")).to_contain_text("web:ops")


async def test_enqueued_elsewhere_shows_up_on_the_overview_without_reload(
    served: Served, browser: Browser, script_errors: list[str]
) -> None:
    page = await open_page(browser, served.url, ADMIN_TOKEN, script_errors)
    ready = page.locator('tr[data-tenant="globex"] .ready')
    await expect(ready).to_have_text("1")
    async with SqliteBackend(served.db) as producer:
        await producer.enqueue(
            QueueCtx("globex"), JobMessage(job_type="report", payload_bytes=b"{}")
        )
    await expect(ready).to_have_text("2")


async def test_the_workers_page_shows_live_and_stopped_workers(
    served: Served, browser: Browser, script_errors: list[str], shots: Path
) -> None:
    async with SqliteBackend(served.db) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend)
        # Queues without jobs: these workers only announce themselves.
        queues = ["mail", "reports"]
        live = Worker(adapter, queues=queues, concurrency=4, handle_signals=False)
        done = Worker(adapter, tenants=[QueueCtx("globex")], queues=queues, handle_signals=False)
        async with done:
            await announced(done)
        async with live:
            await announced(live)
            page = await open_page(browser, served.url, ADMIN_TOKEN, script_errors)
            await page.click("text=Workers")
            await expect(page.locator("h1")).to_have_text("Workers")
            await expect(page.locator("#workers tr.worker-live")).to_have_count(1)
            await expect(page.locator("#workers tr.worker-stopped")).to_have_count(1)
            row = page.locator(f'tr[data-worker="{live.presence.worker_id}"]')
            await expect(row.locator(".running")).to_have_text("0 of 4")
            await expect(row).to_contain_text("mail, reports")
            stopped = page.locator(f'tr[data-worker="{done.presence.worker_id}"]')
            await expect(stopped).to_contain_text("globex")
            await screenshot(page, "web-workers", shots)


async def announced(worker: Worker[None]) -> None:
    """Wait (a bounded while) for the worker's first announcement."""

    async def first() -> None:
        while worker.presence.concurrency == 0:  # noqa: ASYNC110 (the worker's own state)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(first(), 30)
