"""`dogqueue cancel|retry|requeue` through the real command, in a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.core.events import Canceled, Requeued
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobStatus
from tests.web.workload import Workload, populate

DOGQUEUE = str(Path(sys.executable).with_name("dogqueue"))


def dogqueue(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOGQUEUE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


async def _populate(db: Path) -> Workload:
    async with SqliteBackend(db) as backend:
        jobs = await populate(backend)
        for _ in range(2):  # two more waiting acme emails
            await backend.enqueue(
                QueueCtx("acme"), JobMessage(job_type="email", payload_bytes=b"{}")
            )
        return jobs


async def _statuses(db: Path, tenant: str) -> dict[str, JobStatus]:
    async with SqliteBackend(db) as backend:
        return {
            job_id: job.status
            for (owner, job_id), job in (await backend.projected_jobs()).items()
            if owner == tenant
        }


async def _last_event(db: Path, tenant: str, job_id: str) -> object:
    async with SqliteBackend(db) as backend:
        return (await backend.history(QueueCtx(tenant), job_id))[-1]


@pytest.fixture
def queue(tmp_path: Path) -> tuple[Path, Workload]:
    db = tmp_path / "queue.db"
    return db, asyncio.run(_populate(db))


def test_cancel_one_job_by_id_is_recorded_with_the_actor(queue: tuple[Path, Workload]) -> None:
    db, jobs = queue
    done = dogqueue(
        "cancel", "--db", str(db), "--tenant", "acme", jobs.acme_waiting, "--actor", "alice"
    )
    assert done.returncode == 0, done.stderr
    assert f"cancel: {jobs.acme_waiting}" in done.stdout and "-> canceled" in done.stdout
    last = asyncio.run(_last_event(db, "acme", jobs.acme_waiting))
    assert isinstance(last, Canceled) and last.actor == "alice"


def test_default_actor_names_the_cli_and_db_comes_from_dogqueue_db(
    queue: tuple[Path, Workload],
) -> None:
    db, jobs = queue
    done = dogqueue("retry", "--tenant", "acme", jobs.acme_dead, env={"DOGQUEUE_DB": str(db)})
    assert done.returncode == 0, done.stderr
    last = asyncio.run(_last_event(db, "acme", jobs.acme_dead))
    assert isinstance(last, Requeued) and last.actor is not None
    assert last.actor.startswith("cli")


def test_dry_run_prints_what_would_change_and_changes_nothing(
    queue: tuple[Path, Workload],
) -> None:
    db, jobs = queue
    before = asyncio.run(_statuses(db, "acme"))
    done = dogqueue("cancel", "--db", str(db), "--tenant", "acme", "--type", "email", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("would cancel 3 job(s):")
    assert jobs.acme_waiting in done.stdout and jobs.acme_done not in done.stdout
    assert asyncio.run(_statuses(db, "acme")) == before


def test_several_jobs_need_a_confirmation(queue: tuple[Path, Workload]) -> None:
    db, _ = queue
    args = ("cancel", "--db", str(db), "--tenant", "acme", "--status", "enqueued")
    refused = dogqueue(*args, stdin="n\n")
    assert refused.returncode == 0 and "cancel 3 jobs? [y/N]" in refused.stdout
    assert "nothing changed" in refused.stdout
    unanswered = dogqueue(*args, stdin="")  # stdin closed: a script that forgot --yes
    assert unanswered.returncode == 2 and "no answer: nothing changed" in unanswered.stdout
    assert JobStatus.CANCELED not in asyncio.run(_statuses(db, "acme")).values()
    accepted = dogqueue(*args, stdin="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "3 of 3 job(s) changed" in accepted.stdout
    statuses = list(asyncio.run(_statuses(db, "acme")).values())
    assert statuses.count(JobStatus.CANCELED) == 3
    assert statuses.count(JobStatus.FAILED) == statuses.count(JobStatus.COMPLETED) == 1


def test_acting_across_tenants_needs_all_tenants(queue: tuple[Path, Workload]) -> None:
    db, jobs = queue
    refused = dogqueue("cancel", "--db", str(db), "--yes")
    assert refused.returncode == 2 and "--all-tenants" in refused.stderr
    done = dogqueue("cancel", "--db", str(db), "--all-tenants", "--type", "report", "--yes")
    assert done.returncode == 0, done.stderr
    assert asyncio.run(_statuses(db, "globex"))[jobs.globex_waiting] is JobStatus.CANCELED
    by_id = dogqueue("requeue", "--db", str(db), "--all-tenants", jobs.globex_waiting)
    assert by_id.returncode == 0, by_id.stderr
    assert asyncio.run(_statuses(db, "globex"))[jobs.globex_waiting] is JobStatus.ENQUEUED


def test_requeue_by_filter_puts_failed_and_canceled_back(queue: tuple[Path, Workload]) -> None:
    db, jobs = queue
    assert (
        dogqueue("cancel", "--db", str(db), "--tenant", "acme", jobs.acme_waiting).returncode == 0
    )
    done = dogqueue("requeue", "--db", str(db), "--tenant", "acme", "--yes")
    assert done.returncode == 0, done.stderr
    assert "2 of 2 job(s) changed" in done.stdout
    statuses = asyncio.run(_statuses(db, "acme"))
    assert statuses[jobs.acme_dead] is statuses[jobs.acme_waiting] is JobStatus.ENQUEUED
    assert statuses[jobs.acme_done] is JobStatus.COMPLETED


def test_unknown_tenant_and_ineligible_jobs_say_so(queue: tuple[Path, Workload]) -> None:
    db, jobs = queue
    unknown = dogqueue("cancel", "--db", str(db), "--tenant", "nobody", "--yes")
    assert unknown.returncode == 2 and "no tenant 'nobody'" in unknown.stderr
    completed = dogqueue("cancel", "--db", str(db), "--tenant", "acme", jobs.acme_done)
    assert completed.returncode == 0 and "skipping" in completed.stderr
    assert "no jobs to cancel" in completed.stdout
    missing = dogqueue("cancel", "--db", str(db) + ".missing", "--tenant", "acme", "--yes")
    assert missing.returncode == 2 and "no queue database" in missing.stderr


def test_web_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    asyncio.run(_populate(db))
    env = {key: value for key, value in os.environ.items() if key != "DOGQUEUE_WEB_TOKEN"}
    done = subprocess.run(
        [DOGQUEUE, "web", "--db", str(db)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2 and "--tokens FILE" in done.stderr
