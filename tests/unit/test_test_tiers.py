"""Tests that need a PostgreSQL server skip where none runs, saying how to get one, and
fail instead under CI=true (dogqueue's pytest plugin; the markers are `postgres` and
`chromium`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dogqueue.testing import pytest_plugin

ROOT = Path(__file__).resolve().parents[2]

NEEDS_POSTGRES = """
import pytest

@pytest.mark.postgres
def test_needs_the_server():
    pass
"""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def run_marked_test(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_tier.py").write_text(NEEDS_POSTGRES)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    env["DOGQUEUE_PG_DSN"] = f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rsE", "-p", "no:cacheprovider", "test_tier.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_a_server_a_postgres_test_skips_saying_how_to_get_one(tmp_path: Path) -> None:
    run = run_marked_test(tmp_path, ci=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout
    assert "no PostgreSQL at 127.0.0.1:" in run.stdout and "apt install postgresql" in run.stdout


def test_under_ci_a_missing_server_fails_the_test(tmp_path: Path) -> None:
    run = run_marked_test(tmp_path, ci=True)
    assert run.returncode == 1, run.stdout + run.stderr
    # It fails in setup, before the test runs: pytest counts that an error.
    assert "1 error" in run.stdout and "CI=true and no PostgreSQL at 127.0.0.1:" in run.stdout


def test_a_missing_browser_is_named_with_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytest_plugin, "CHROMIUM", "/nonexistent/chromium")
    reason = pytest_plugin.chromium_missing.__wrapped__()
    assert reason == "no Chromium at /nonexistent/chromium: apt install chromium"
