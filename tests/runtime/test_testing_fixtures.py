"""The pytest plugin's async fixtures, immediate mode, jobs registered where they are
defined, and function jobs without a context."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dogqueue import (
    FakeClock,
    InvalidInput,
    InvalidJobType,
    Job,
    JobError,
    JobRegistry,
    JobStatus,
    QueueAdapter,
    QueueCtx,
    job,
)
from dogqueue.backend.contract import Backend
from dogqueue.backend.memory import MemoryBackend
from dogqueue.backend.postgres.backend import default_dsn
from dogqueue.testing.immediate import ImmediateAdapter

ROOT = Path(__file__).resolve().parents[2]
T = QueueCtx("t")


@dataclass
class Book:
    """The context of these tests' jobs: what ran, and an adapter to enqueue with."""

    ran: list[str] = field(default_factory=list)
    adapter: QueueAdapter[Any] | None = None


registry: JobRegistry[Book] = JobRegistry()


@registry.register
class Note(Job[Book, str]):
    JOB_TYPE = "note"
    text: str
    failures: int = 0

    async def execute(self, ctx: Book) -> str:
        ctx.ran.append(self.text)
        if ctx.ran.count(self.text) <= self.failures:
            raise JobError("not yet")
        return self.text.upper()


@registry.register
class Spawn(Job[Book, None]):
    """Enqueues a Note from inside a running job."""

    JOB_TYPE = "spawn"

    async def execute(self, ctx: Book) -> None:
        assert ctx.adapter is not None
        await ctx.adapter.enqueue(T, Note(text="spawned"))


@job(registry=registry, takes_context=False)
async def double(n: int, times: int = 2) -> int:
    return n * times


@job(registry=registry)
def ping() -> str:
    return "pong"


@pytest.fixture
def dogqueue_jobs() -> JobRegistry[Book]:
    return registry


@pytest.fixture
def dogqueue_context() -> Book:
    return Book()


async def test_the_fixtures_are_async_and_the_adapter_knows_the_registered_jobs(
    dogqueue_adapter: QueueAdapter[Book], dogqueue_backend: Backend, dogqueue_clock: FakeClock
) -> None:
    assert dogqueue_adapter.backend is dogqueue_backend
    assert dogqueue_backend.clock is dogqueue_clock
    assert dogqueue_adapter.job_registry.job_types == ["double", "note", "ping", "spawn"]
    handle = await dogqueue_adapter.enqueue(T, double(21))
    assert await dogqueue_adapter.get_status(T, handle) is JobStatus.ENQUEUED


async def test_immediate_mode_runs_jobs_retries_chains_and_jobs_enqueued_inside_jobs(
    dogqueue_immediate: ImmediateAdapter[Book], dogqueue_context: Book, dogqueue_clock: FakeClock
) -> None:
    dogqueue_context.adapter = dogqueue_immediate
    start = dogqueue_clock()
    flaky = await dogqueue_immediate.enqueue(T, Note(text="a", failures=2))
    assert await dogqueue_immediate.get_status(T, flaky) is JobStatus.COMPLETED
    assert dogqueue_context.ran == ["a", "a", "a"]
    assert dogqueue_clock() > start  # moved through two retry delays
    assert await dogqueue_immediate.wait_result(T, flaky, timeout=0) == "A"

    chain = await dogqueue_immediate.enqueue_chain(T, [Note(text="b"), double(4), ping()])
    assert [await dogqueue_immediate.wait_result(T, h, timeout=0) for h in chain] == [
        "B",
        8,
        "pong",
    ]
    await dogqueue_immediate.enqueue(T, Spawn())
    assert dogqueue_context.ran[-1] == "spawned"

    later = await dogqueue_immediate.enqueue(
        T, Note(text="later"), run_at=dogqueue_clock() + timedelta(days=1)
    )
    assert await dogqueue_immediate.get_status(T, later) is JobStatus.ENQUEUED


async def test_immediate_mode_runs_an_operator_retry(
    dogqueue_immediate: ImmediateAdapter[Book], dogqueue_context: Book
) -> None:
    failed = await dogqueue_immediate.enqueue(T, Note(text="c", failures=1), max_retries=0)
    assert await dogqueue_immediate.get_status(T, failed) is JobStatus.FAILED
    assert await dogqueue_immediate.retry_job(T, failed) is JobStatus.COMPLETED
    assert dogqueue_context.ran == ["c", "c"]


async def test_the_postgres_fixture_is_a_fresh_schema_on_the_server(
    dogqueue_postgres_backend: Backend, dogqueue_jobs: JobRegistry[Book]
) -> None:
    adapter = ImmediateAdapter(dogqueue_postgres_backend, jobs=dogqueue_jobs, context=Book())
    handle = await adapter.enqueue(T, double(5, times=3))
    assert await adapter.wait_result(T, handle, timeout=0) == 15
    assert [key[1] for key in await dogqueue_postgres_backend.projected_jobs()] == [handle]


def run_pytest(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_app.py"
    test_file.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )


def test_a_project_runs_its_tests_on_postgresql_with_one_override_and_the_schema_goes(
    tmp_path: Path,
) -> None:
    """Strict-mode pytest-asyncio, no conftest of dogqueue's: the plugin alone."""
    done = run_pytest(
        tmp_path,
        f"""
        import pytest
        from dogqueue import QueueCtx, job

        @job(takes_context=False)
        async def add(a: int, b: int) -> int:
            return a + b

        @pytest.fixture
        def dogqueue_jobs():
            return [add]

        @pytest.fixture
        def dogqueue_backend(dogqueue_postgres_backend):
            return dogqueue_postgres_backend

        @pytest.mark.asyncio
        async def test_add(dogqueue_immediate):
            open({str(tmp_path / "schema")!r}, "w").write(dogqueue_immediate.backend.schema)
            handle = await dogqueue_immediate.enqueue(QueueCtx("t"), add(2, 3))
            assert await dogqueue_immediate.wait_result(QueueCtx("t"), handle) == 5
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    schema = (tmp_path / "schema").read_text()
    assert schema.startswith("dogqueue_test_")

    async def exists() -> bool:
        conn = await asyncpg.connect(default_dsn())
        try:
            found = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
            return found is not None
        finally:
            await conn.close()

    assert asyncio.run(exists()) is False


def test_without_pytest_asyncio_an_async_fixture_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "pytest_asyncio"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    source = """
        def test_clock(dogqueue_clock):
            assert dogqueue_clock() is not None

        def test_adapter(dogqueue_adapter):
            pass
        """
    test_file = tmp_path / "test_app.py"
    test_file.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), str(ROOT)]))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio"]
    done = subprocess.run(
        [*command, str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert "1 passed, 1 error" in done.stdout, done.stdout + done.stderr
    assert "pip install 'dogqueue[testing]'" in done.stdout


async def test_jobs_register_where_they_are_defined_and_the_explicit_form_still_works() -> None:
    assert double.takes_context is False and ping.takes_context is False
    assert registry.job_class("double") is double.job_class
    explicit: QueueAdapter[None] = QueueAdapter(MemoryBackend())
    await explicit.register_job(double)
    assert explicit.job_registry.job_types == ["double"]
    listed: QueueAdapter[None] = QueueAdapter(MemoryBackend(), jobs=[Note, double])
    assert listed.job_registry.job_types == ["double", "note"]
    shared: QueueAdapter[Book] = QueueAdapter(MemoryBackend(), jobs=registry)

    @job(registry=registry, job_type="late")
    async def late(ctx: Book) -> None:
        ctx.ran.append("late")

    assert "late" in shared.job_registry  # a registry is shared, not copied
    with pytest.raises(InvalidJobType):
        explicit.message_for(Note(text="x"))
    with pytest.raises(InvalidInput, match="jobs"):
        QueueAdapter(MemoryBackend(), jobs="note")  # type: ignore[arg-type]


def test_a_function_job_without_context_runs_with_any_context() -> None:
    made = double(3, times=4)
    assert (made.n, made.times) == (3, 4)  # type: ignore[attr-defined]
    assert asyncio.run(made.execute(object())) == 12  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match="takes_context"):
        job(lambda: None, takes_context=False)  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="first argument"):

        @job  # type: ignore[arg-type]
        async def keyword_only(*, a: int) -> int:
            return a
