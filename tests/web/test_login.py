"""Getting in: a one-time login link from `dogqueue web`'s start line (real command, real
Chromium), sessions that end when idle and at their lifetime, and a session store that
10,000 logins by one principal cannot empty of another's sessions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from dogqueue import FakeClock
from dogqueue.backend.memory import MemoryBackend
from dogqueue.web import TokenStore, create_app
from dogqueue.web.app import COOKIE
from dogqueue.web.auth import LOGIN_CODE_VALID, MAX_SESSIONS_PER_PRINCIPAL
from tests.web.test_chromium import (  # noqa: F401 (fixtures)
    CHROMIUM_ARGS,
    _free_port,
    _populate,
    _wait_until_up,
    browser,
    screenshot,
    script_errors,
    shots,
)
from tests.web.workload import ADMIN_TOKEN, TOKENS_TEXT

BASE = "http://dashboard.test"


def store(clock: FakeClock, **limits: timedelta) -> TokenStore:
    return TokenStore.parse(TOKENS_TEXT, clock=clock, **limits)


def test_sessions_end_when_idle_and_at_their_lifetime() -> None:
    clock = FakeClock()
    tokens = store(clock, idle=timedelta(minutes=30), lifetime=timedelta(hours=2))
    admin = tokens.principal(ADMIN_TOKEN)
    assert admin is not None
    busy, idle = tokens.open_session(admin), tokens.open_session(admin)
    for _ in range(5):  # 5 x 20 minutes of use keeps `busy` alive, not `idle`
        clock.advance(timedelta(minutes=20))
        assert tokens.session(busy) is not None
    assert tokens.session(idle) is None
    clock.advance(timedelta(minutes=20))  # 2 h after login: the lifetime is over
    assert tokens.session(busy) is None


def test_ten_thousand_logins_cannot_log_anyone_else_out() -> None:
    clock = FakeClock()
    tokens = store(clock)
    admin, tenant = tokens.principal(ADMIN_TOKEN), tokens.principal("acme-token-0123456789abcdef")
    assert admin is not None and tenant is not None
    kept = tokens.open_session(admin)
    flood = [tokens.open_session(tenant) for _ in range(10_000)]
    assert tokens.session(kept) is not None
    assert sum(tokens.session(s) is not None for s in flood) == MAX_SESSIONS_PER_PRINCIPAL
    assert tokens.session(flood[-1]) is not None and tokens.session(flood[0]) is None


async def test_a_login_code_works_once_and_only_while_fresh() -> None:
    clock = FakeClock()
    tokens = store(clock)
    admin = tokens.first_admin
    assert admin is not None and admin.name == "ops"
    fresh, stale = tokens.issue_login_code(admin), tokens.issue_login_code(admin)
    app = create_app(MemoryBackend(clock=clock), tokens, clock=clock)
    headers = {"Origin": BASE}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, headers=headers
    ) as http:
        answer = await http.post("/login", data={"code": fresh})
        assert answer.status_code == 303 and COOKIE in answer.cookies
        http.cookies.clear()
        again = await http.post("/login", data={"code": fresh})
        assert again.status_code == 401 and "used already" in again.text
        clock.advance(LOGIN_CODE_VALID)
        late = await http.post("/login", data={"code": stale})
        assert late.status_code == 401 and COOKIE not in late.cookies


@dataclass
class Started:
    url: str
    start_line: str


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    """`dogqueue web` in its own process. Its login code is on its first line and
    nowhere else in its output, whatever the test did with it."""
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS_TEXT)
    asyncio.run(_populate(tmp_path / "q.db"))
    port = _free_port()
    command = [sys.executable, "-m", "dogqueue", "web", "--db", str(tmp_path / "q.db")]
    options = ["--port", str(port), "--tokens", str(tokens), "--session-idle", "5"]
    server = subprocess.Popen(
        [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert server.stdout is not None
        start_line = server.stdout.readline().decode()
        _wait_until_up(url, server)
        yield Started(url, start_line)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    code = start_line.split("#code=", 1)[1].split()[0]
    assert "POST /login" in output.decode() and code not in output.decode()


async def test_the_start_line_link_logs_a_browser_in_once(
    started: Started,
    browser: Browser,  # noqa: F811
    script_errors: list[str],  # noqa: F811
    shots: Path,  # noqa: F811
) -> None:
    url = started.url
    assert started.start_line.startswith(f"dogqueue web: log in as ops at {url}/login#code=")
    link = started.start_line.split(" at ", 1)[1].split()[0]
    page = await (await browser.new_context()).new_page()
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    await page.goto(link)
    await expect(page.locator("h1")).to_have_text("Tenants")
    assert "code" not in page.url
    other = await (await browser.new_context()).new_page()
    await other.goto(link)  # the code is dead now
    await expect(other.locator(".notice")).to_contain_text("used already")


def test_the_code_logs_a_program_in_once_and_is_never_logged(started: Started) -> None:
    code = started.start_line.split("#code=", 1)[1].split()[0]
    with httpx.Client(base_url=started.url, headers={"Origin": started.url}) as http:
        assert http.post("/login", data={"code": code}).status_code == 303
        assert http.get("/").status_code == 200  # the session cookie
        http.cookies.clear()
        assert http.post("/login", data={"code": code}).status_code == 401
