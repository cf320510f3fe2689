"""mypy --strict accepts well-typed jobs and rejects a job whose execute returns the wrong type."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api

GOOD = """
from dogqueue import Job, QueueAdapter, QueueCtx
from dogqueue.backend.memory import MemoryBackend

class Resize(Job[dict[str, int], int]):
    JOB_TYPE = "resize"
    width: int

    async def execute(self, ctx: dict[str, int]) -> int:
        return self.width * ctx["scale"]

async def main() -> None:
    adapter: QueueAdapter[dict[str, int]] = QueueAdapter(MemoryBackend())
    await adapter.register_job(Resize)
    job_id: str = await adapter.enqueue(QueueCtx("t"), Resize(width=3))
    print(job_id)
"""

BAD = """
from dogqueue import Job

class Resize(Job[dict[str, int], int]):
    JOB_TYPE = "resize"
    width: int

    async def execute(self, ctx: dict[str, int]) -> str:
        return "not an int"
"""


def check(tmp_path: Path, source: str) -> tuple[str, int]:
    path = tmp_path / "snippet.py"
    path.write_text(textwrap.dedent(source))
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(path)]
    )
    return out + err, status


@pytest.mark.slow
def test_mypy_accepts_a_well_typed_job(tmp_path: Path) -> None:
    output, status = check(tmp_path, GOOD)
    assert status == 0, output


@pytest.mark.slow
def test_mypy_rejects_a_wrong_return_type(tmp_path: Path) -> None:
    output, status = check(tmp_path, BAD)
    assert status == 1
    assert "[override]" in output and "snippet.py:8" in output
