"""`explain`, `history` and the CLI say why a job waits and what it unblocked."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dogqueue import FakeClock, JobMessage, QueueCtx
from dogqueue.audit.api import explain_job
from dogqueue.backend.sqlite import SqliteBackend
from tests.audit.cli_run import dogqueue

CTX = QueueCtx("acme")


def _message(job_type: str, **options: object) -> JobMessage:
    return JobMessage(job_type=job_type, payload_bytes=b"{}", **options)  # type: ignore[arg-type]


async def _workflow(path: Path) -> dict[str, str]:
    """Three parts and a merge after them; the first part done, the second failed
    (the merge opted in to run anyway), and a report after the first part, done."""
    async with SqliteBackend(path, clock=FakeClock()) as backend:
        a, b, c, merge = await backend.enqueue_many(
            CTX,
            [
                _message("part"),
                _message("part"),
                _message("part"),
                _message("merge", after_earlier=(0, 1, 2), on_parent_failure="run"),
            ],
        )
        report = await backend.enqueue(CTX, _message("report", after=(a,)))
        lease = await backend.dequeue(CTX, ["default"])
        assert lease is not None and lease.job_id == a
        await backend.ack_complete(CTX, lease)
        lease = await backend.dequeue(CTX, ["default"])
        assert lease is not None and lease.job_id == b
        await backend.ack_fail(CTX, lease, "out of memory", retry=False)
        return {"a": a, "b": b, "c": c, "merge": merge, "report": report}


def test_explain_says_what_a_job_waits_for_and_what_it_unblocked(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    ids = asyncio.run(_workflow(path))

    async def explain(job_id: str) -> str:
        async with SqliteBackend(path) as backend:
            return str(await explain_job(backend.log_reader(), CTX, job_id))

    waiting = asyncio.run(explain(ids["merge"]))
    assert f"is waiting for 1 of 3 parents: {ids['c']} (enqueued)" in waiting
    assert f"parents already ended: {ids['a']}, {ids['b']}" in waiting
    assert "it runs even if a parent fails" in waiting

    parent = asyncio.run(explain(ids["a"]))
    assert "it unblocked 1 of its 2 dependent(s)" in parent
    assert f"{ids['report']} (enqueued)" in parent and f"{ids['merge']} (waiting)" in parent

    pending = asyncio.run(explain(ids["c"]))
    assert f"1 job(s) wait for it: {ids['merge']} (waiting)" in pending


def test_history_and_explain_commands_show_the_workflow(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    ids = asyncio.run(_workflow(path))
    result = dogqueue("history", "--db", path, "--tenant", "acme", ids["merge"])
    assert result.returncode == 0, result.stderr
    assert f"waiting for 3 of 3 parents: {ids['a']}" in result.stdout
    assert f"parent {ids['a']} completed; 2 parent(s) left" in result.stdout
    assert f"parent {ids['b']} failed: out of memory" in result.stdout
    result = dogqueue("explain", "--db", path, "--tenant", "acme", ids["merge"])
    assert result.returncode == 0, result.stderr
    assert "waiting for 1 of 3 parents" in result.stdout
