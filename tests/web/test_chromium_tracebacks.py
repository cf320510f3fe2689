"""A failed job's page in a real Chromium: each run's traceback preformatted in its
own row, a run's heartbeats as one row, and the attempts counting every run."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests.audit.test_tracebacks_and_runs import make_log
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


async def test_a_job_page_shows_each_runs_traceback_preformatted(
    served: Served,  # noqa: F811
    browser: Browser,  # noqa: F811
    script_errors: list[str],  # noqa: F811
    shots: Path,  # noqa: F811
) -> None:
    job_id = await make_log(served.db)  # written while `dogqueue web` serves the file
    page = await open_page(browser, served.url, ADMIN_TOKEN, script_errors)
    await page.goto(f"{served.url}/tenants/acme/jobs/{job_id}")
    await expect(page.locator("#attempts")).to_have_text(
        "attempts 2 in all (1 of 1 since an operator's retry)"
    )
    failures = page.locator("#timeline .event-failed pre.traceback")
    await expect(failures).to_have_count(2)
    shown = await failures.nth(1).inner_text()
    lines = shown.splitlines()
    assert lines[0] == "RuntimeError: bad order payload"
    assert lines[1].startswith('  File "tests/audit/test_tracebacks_and_runs.py", line ')
    assert lines[2] == "    parse_order(self.text)"
    assert any(line.startswith("caused by json.decoder.JSONDecodeError") for line in lines)
    beats = page.locator("#timeline .event-heartbeats")
    await expect(beats).to_have_count(2)
    await expect(beats.nth(0)).to_contain_text("5 heartbeats, last ")
    await expect(beats.nth(0)).to_contain_text("progress 100%")
    await expect(page.locator("#timeline td:nth-child(4)")).to_have_text(
        ["", "1", "1", "1", "", "2", "2", "2"]
    )
    await screenshot(page, "web-traceback", shots)
