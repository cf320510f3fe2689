"""Fixtures of the audit tests: SQLite logs written by the real backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogqueue import FakeClock
from dogqueue.backend.sqlite import SqliteBackend
from tests.audit.audit_workload import write_story


@pytest.fixture
async def story_log(tmp_path: Path, clock: FakeClock) -> tuple[Path, dict[str, str]]:
    """A closed SQLite log holding the story of write_story, and the story's job ids."""
    path = tmp_path / "queue.db"
    async with SqliteBackend(path, clock=clock) as backend:
        ids = await write_story(backend, clock)
    return path, ids
