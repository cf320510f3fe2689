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


RUNTIME_GOOD = """
from dogqueue import Job, JobHandle, QueueAdapter, QueueCtx, SyncJob, current_run, job
from dogqueue.backend.memory import MemoryBackend

class Resize(Job[dict[str, int], int]):
    JOB_TYPE = "resize"
    width: int

    async def execute(self, ctx: dict[str, int]) -> int:
        run = current_run()
        await run.report_progress(0.5)
        return self.width * ctx["scale"] * run.attempt

class Thumbnail(SyncJob[dict[str, int], list[str]]):
    JOB_TYPE = "thumbnail"
    path: str

    def execute(self, ctx: dict[str, int]) -> list[str]:
        return [self.path, current_run().tenant_id]

@job
async def add(ctx: dict[str, int], a: int, b: int = 1) -> int:
    return a + b

@job(job_type="shout")
def shout(ctx: dict[str, int], text: str) -> str:
    return text.upper()

async def main() -> None:
    adapter: QueueAdapter[dict[str, int]] = QueueAdapter(MemoryBackend())
    for job_class in (Resize, Thumbnail):
        await adapter.register_job(job_class)
    await adapter.register_job(add)
    t = QueueCtx("t")
    handle: JobHandle[int] = await adapter.enqueue(t, Resize(width=3))
    job_id: str = handle
    width: int = await adapter.wait_result(t, handle, timeout=5)
    paths: list[str] = await adapter.wait_result(t, await adapter.enqueue(t, Thumbnail(path="p")))
    total: int = await adapter.wait_result(t, await adapter.enqueue(t, add(1, b=2)))
    text: str = await adapter.wait_result(t, await adapter.enqueue(t, shout("hi")))
    print(job_id, width, paths, total, text)
"""

RUNTIME_BAD = """
from dogqueue import Job, QueueAdapter, QueueCtx, job
from dogqueue.backend.memory import MemoryBackend

class Resize(Job[None, int]):
    JOB_TYPE = "resize"
    width: int

    async def execute(self, ctx: None) -> int:
        return self.width

@job
async def add(ctx: None, a: int) -> int:
    return a

async def main(adapter: QueueAdapter[None]) -> None:
    handle = await adapter.enqueue(QueueCtx("t"), Resize(width=3))
    wrong: str = await adapter.wait_result(QueueCtx("t"), handle)
    await adapter.enqueue(QueueCtx("t"), add("not an int"))
    print(wrong)
"""


@pytest.mark.slow
def test_mypy_accepts_runs_results_sync_and_function_jobs(tmp_path: Path) -> None:
    output, status = check(tmp_path, RUNTIME_GOOD)
    assert status == 0, output


@pytest.mark.slow
def test_mypy_rejects_a_wrong_result_type_and_a_wrong_job_argument(tmp_path: Path) -> None:
    output, status = check(tmp_path, RUNTIME_BAD)
    assert status == 1
    assert 'snippet.py:18: error: Argument 2 to "wait_result"' in output, output
    assert 'snippet.py:19: error: Argument 1 to "__call__" of "JobFunction"' in output, output


CONTEXT_FREE = """
from dogqueue import Job, JobHandle, JobRegistry, QueueAdapter, QueueCtx, job
from dogqueue.backend.memory import MemoryBackend

jobs: JobRegistry[None] = JobRegistry()

@jobs.register
class Resize(Job[None, int]):
    JOB_TYPE = "resize"
    width: int

    async def execute(self, ctx: None) -> int:
        return self.width

@job(registry=jobs, takes_context=False)
async def double(n: int, times: int = 2) -> int:
    return n * times

@job(takes_context=False, max_retries=0)
def shout(text: str) -> str:
    return text.upper()

@job
async def ping() -> str:
    return "pong"

async def main() -> None:
    adapter: QueueAdapter[None] = QueueAdapter(MemoryBackend(), jobs=jobs)
    t = QueueCtx("t")
    doubled: int = await adapter.wait_result(t, await adapter.enqueue(t, double(2, times=3)))
    shouted: str = await adapter.wait_result(t, await adapter.enqueue(t, shout("hi")))
    pong: str = await adapter.wait_result(t, await adapter.enqueue(t, ping()))
    resized: JobHandle[int] = await adapter.enqueue(t, Resize(width=1))
    print(doubled, shouted, pong, resized)
    wrong: str = await adapter.wait_result(t, await adapter.enqueue(t, double(2)))
    double("two")
    ping(1)
    print(wrong)
"""


@pytest.mark.slow
def test_mypy_checks_function_jobs_without_a_context(tmp_path: Path) -> None:
    """The payload parameters are checked when there is no context parameter at all,
    and the class decorator keeps the class's type."""
    output, status = check(tmp_path, CONTEXT_FREE)
    assert status == 1
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["35", "36", "37"], output
    assert 'expected "BaseJob[Any, str]"' in errors[0], output  # an int result read as str
    assert 'Argument 1 to "__call__" of "JobFunction"' in errors[1], output
    assert 'Too many arguments for "__call__" of "JobFunction"' in errors[2], output


CLASS_WITHOUT_CONTEXT = """
from dogqueue import Job, JobHandle, QueueAdapter, QueueCtx, SyncJob
from dogqueue.backend.memory import MemoryBackend

class Resize(Job[None, int]):
    JOB_TYPE = "resize"
    width: int

    async def execute(self) -> int:
        return self.width * 2

class Shout(SyncJob[None, str]):
    JOB_TYPE = "shout"
    text: str

    def execute(self) -> str:
        return self.text.upper()

class WrongResult(Job[None, int]):
    JOB_TYPE = "wrong"

    async def execute(self) -> str:
        return "not an int"

class WrongContext(Job[dict[str, int], int]):
    JOB_TYPE = "wrong-context"

    async def execute(self, ctx: str) -> int:
        return 1

async def main() -> None:
    adapter: QueueAdapter[None] = QueueAdapter(MemoryBackend())
    t = QueueCtx("t")
    resized: int = await adapter.wait_result(t, await adapter.enqueue(t, Resize(width=1)))
    shouted: JobHandle[str] = await adapter.enqueue(t, Shout(text="hi"))
    print(resized, shouted)
"""


@pytest.mark.slow
def test_mypy_checks_class_jobs_whose_execute_takes_no_context(tmp_path: Path) -> None:
    """`execute(self)` is accepted when the job uses no context; its result type and a
    context it does take are still checked against the class's `Job[C, R]`."""
    output, status = check(tmp_path, CLASS_WITHOUT_CONTEXT)
    assert status == 1
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["22", "28"], output
    assert all("[override]" in line for line in errors), output
