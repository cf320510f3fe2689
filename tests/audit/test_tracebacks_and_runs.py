"""A failed attempt's traceback, stored with its frames and shown preformatted (job's
frames first, short paths) by `history`, `explain` and the dashboard; every run counted
across an operator's retry; a run's heartbeats folded into one row."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from dogqueue import FakeClock, Job, JobFailed, QueueAdapter, QueueConfig, QueueCtx, current_run
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.testing.runner import run_until_idle
from tests.audit.cli_run import dogqueue

T = QueueCtx("acme")


def parse_order(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as error:
        raise RuntimeError("bad order payload") from error


class ImportOrder(Job[None, None]):
    JOB_TYPE = "import_order"
    text: str

    async def execute(self, ctx: None) -> None:
        run = current_run()
        for step in range(1, 6):
            await run.report_progress(step / 5)
        parse_order(self.text)


async def make_log(path: Path) -> str:
    """One job that fails for good, is retried by an operator, and fails again."""
    clock = FakeClock()
    config = QueueConfig(base_retry_backoff=timedelta(seconds=0.25))
    async with SqliteBackend(path, clock=clock, config=config) as backend:
        adapter: QueueAdapter[None] = QueueAdapter(backend, jobs=[ImportOrder])
        handle = await adapter.enqueue(T, ImportOrder(text="{nope"), max_retries=0)
        await run_until_idle(adapter, clock=clock)
        await adapter.retry_job(T, handle)
        await run_until_idle(adapter, clock=clock)
        try:
            await adapter.wait_result(T, handle, timeout=0)
        except JobFailed as failed:
            message = f"job {handle.job_id} (import_order) failed: RuntimeError: bad order payload"
            assert str(failed) == message  # the first line, no repr of the handle
        else:
            raise AssertionError("the job should have failed")
        return handle.job_id


async def test_history_and_explain_show_the_traceback_and_count_every_run(
    tmp_path: Path,
) -> None:
    db = tmp_path / "q.db"
    job_id = await make_log(db)
    history = dogqueue("history", "--db", db, "--tenant", "acme", job_id)
    assert history.returncode == 0, history.stderr
    table, *errors = history.stdout.split("\n\n")
    rows = table.splitlines()[1:]
    kinds = [row.split()[3] for row in rows]  # after seq and the two-part time
    assert kinds == [
        "enqueued", "leased", "heartbeats", "failed", "requeued", "leased", "heartbeats", "failed",
    ]  # fmt: skip
    attempts = [row.split()[4] for row in rows]
    assert attempts == ["-", "1", "1", "1", "-", "2", "2", "2"]  # the retry's run is the 2nd
    assert "5 heartbeats, last " in rows[2] and "progress 100%" in rows[2]
    assert ".000+00:00" in rows[0]  # milliseconds
    assert "RuntimeError: bad order payload…" in rows[3]  # the first line in the table

    assert [e.splitlines()[0].split(" failed")[0] for e in errors] == ["run 1", "run 2"]
    trace = errors[1].splitlines()[1:]
    assert trace[0] == "RuntimeError: bad order payload"
    # The job's frames first, with their source, paths from the package on.
    assert trace[1] == (
        f'  File "tests/audit/test_tracebacks_and_runs.py", line {_line("parse_order(self")},'
        " in execute"
    )
    assert trace[2] == "    parse_order(self.text)"
    assert trace[3].endswith(", in parse_order") and "raise RuntimeError" in trace[4]
    assert trace[5].startswith("  called from: dogqueue/worker/execution.py:")
    assert trace[6].startswith("caused by json.decoder.JSONDecodeError: Expecting property")
    assert '  File "json/decoder.py"' in errors[1]
    assert str(tmp_path) not in history.stdout and "site-packages" not in history.stdout

    explained = dogqueue("explain", "--db", db, "--tenant", "acme", job_id)
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert "failed for good at" in lines[0] and "after 2 attempt(s)" in lines[0]
    assert "  last error: RuntimeError: bad order payload" in lines
    start = lines.index("  last error: RuntimeError: bad order payload")
    assert lines[start + 1].startswith('      File "tests/audit/test_tracebacks_and_runs.py"')


def _line(text: str) -> int:
    source = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if text in line and "def " not in line)
