"""`dogqueue.testing`: run queued jobs until idle on a fake clock, and the pytest plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from dogqueue import FakeClock, JobStatus, QueueAdapter, QueueConfig, QueueCtx
from dogqueue.backend.base import EngineBackend
from dogqueue.testing.runner import run_until_idle
from tests.runtime.helpers import ALL_JOBS, Echo, Flaky, Probe

ROOT = Path(__file__).resolve().parents[2]
T = QueueCtx("tenant-a")


async def test_run_until_idle_goes_through_retries_and_schedules(
    make_backend: Callable[..., EngineBackend], clock: FakeClock
) -> None:
    config = QueueConfig(base_retry_backoff=timedelta(minutes=5))
    async with make_backend(config=config) as backend:
        adapter: QueueAdapter[Probe] = QueueAdapter(backend)
        for job_class in ALL_JOBS:
            await adapter.register_job(job_class)
        probe, start = Probe(), clock()
        flaky = await adapter.enqueue(T, Flaky(name="f", failures=2))
        soon = await adapter.enqueue(T, Echo(text="soon"), run_at=start + timedelta(hours=1))
        late = await adapter.enqueue(T, Echo(text="late"), run_at=start + timedelta(days=30))
        other = await adapter.enqueue(T, Echo(text="elsewhere"), queue="other")

        report = await run_until_idle(
            adapter,
            context=probe,
            clock=clock,
            queues=["default"],
            until=start + timedelta(days=1),
        )
        status = {job_id: info.status for (_, job_id), info in report.jobs.items()}
        assert status[flaky] is JobStatus.COMPLETED and probe.runs["f"] == 3
        assert status[soon] is JobStatus.COMPLETED
        assert status[late] is JobStatus.ENQUEUED  # beyond `until`
        assert status[other] is JobStatus.ENQUEUED  # a queue not served
        assert start + timedelta(hours=1) <= report.now < start + timedelta(days=1)

        report = await run_until_idle(adapter, context=probe, clock=clock)
        assert report.statuses == {JobStatus.COMPLETED: 4}
        assert report.now == start + timedelta(days=30)


def test_the_example_passes_under_pytest_without_hypothesis_or_plugin_setup(
    tmp_path: Path,
) -> None:
    """The fixtures register themselves (a pytest11 entry point) and running jobs in
    tests needs no hypothesis: here `import hypothesis` fails outright."""
    blocker = tmp_path / "blocked" / "hypothesis"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('hypothesis is not installed')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), str(ROOT)])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:hypothesispytest",
            "-p",
            "no:cacheprovider",
            str(ROOT / "examples" / "testing_your_jobs.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    probe = (
        "import dogqueue.testing as t, sys; t.run_until_idle; print('hypothesis' in sys.modules)"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert imported.stdout.strip() == "False"


def test_every_name_dogqueue_testing_exports_resolves() -> None:
    import dogqueue.testing as testing

    assert sorted(testing.__all__) == sorted(testing._HOMES)
    for name in testing.__all__:
        assert getattr(testing, name).__name__ == name
