"""The shipped conformance suite, run as a user would (from outside the project, on a
backend named MODULE:FACTORY), passes on an honest wrapper of the memory backend and
fails on broken ones (properties/broken_conformance.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from properties.broken_conformance import CAUGHT_BY

ROOT = Path(__file__).resolve().parents[1]

#: A user's backend, outside dogqueue: every call forwarded to a MemoryBackend, and no
#: optional hooks (so the tests needing them skip).
HONEST = """
from dogqueue.backend.memory import MemoryBackend


class Wrapped:
    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def __aenter__(self):
        await self._inner.open()
        return self

    async def __aexit__(self, *exc_info):
        await self._inner.close()


def make_backend(*, clock, config):
    return Wrapped(MemoryBackend(clock=clock, config=config))
"""


def run_conformance(where: Path, spec: str, *selection: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(where)])
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    command += ["--pyargs", "dogqueue.testing.conformance", f"--dogqueue-backend={spec}"]
    return subprocess.run(
        [*command, *selection], cwd=where, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_suite_passes_on_an_honest_backend_outside_the_project(tmp_path: Path) -> None:
    (tmp_path / "honest_backend.py").write_text(HONEST)
    run = run_conformance(tmp_path, "honest_backend:make_backend")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
    # Its tests needing a hook the factory lacks skip, saying which.
    assert "has no reopen hook" in run.stdout
    assert "has no crash_mid_transaction hook" in run.stdout


@pytest.mark.parametrize("name", list(CAUGHT_BY))
def test_the_suite_fails_on_a_broken_backend(tmp_path: Path, name: str) -> None:
    run = run_conformance(tmp_path, f"properties.broken_conformance:{name}", "-k", CAUGHT_BY[name])
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert " failed" in run.stdout
