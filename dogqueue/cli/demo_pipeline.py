"""The email-inbox pipeline behind `dogqueue demo`.

Two tenants each snapshot a mailbox (through a flaky mail API that fails once), analyse
the snapshot, get a scheduled daily summary and start a cleanup that is canceled while it
runs. One `Worker` runs everything on a SQLite file; at the end every job's history is
printed from the log.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.client.adapter import QueueAdapter
from dogqueue.clock import utc_now
from dogqueue.core.config import QueueConfig
from dogqueue.core.errors import JobAlreadyExists
from dogqueue.core.events import AnyEvent, Failed
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.jobs import Job, JobError
from dogqueue.worker import Worker

#: Quick retries and leases, so the demo finishes in seconds.
DEMO_CONFIG = QueueConfig(
    default_lease_duration=timedelta(seconds=10),
    base_retry_backoff=timedelta(milliseconds=300),
    max_retry_backoff=timedelta(seconds=1),
    reaper_interval=timedelta(seconds=1),
)
TENANTS = {"acme": "inbox@acme.example", "globex": "support@globex.example"}
#: When the daily summary is scheduled, from the start of the demo.
SUMMARY_DELAY = timedelta(seconds=2)
_TERMINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}


@dataclass
class Inbox:
    """What the pipeline's jobs share: the adapter (to enqueue follow-ups), the flaky
    mail API's state, and the jobs started, for the final report."""

    adapter: QueueAdapter[Inbox]
    write: Callable[[str], None]
    flaky_mailboxes: set[str] = field(default_factory=set)
    jobs: list[tuple[QueueCtx, str, str]] = field(default_factory=list)
    cleanup_started: asyncio.Event = field(default_factory=asyncio.Event)

    async def enqueue(
        self,
        ctx: QueueCtx,
        label: str,
        job: Job[Inbox, Any],
        *,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Enqueue a pipeline job and remember it for the report."""
        job_id = await self.adapter.enqueue(
            ctx, job, run_at=run_at, idempotency_key=idempotency_key
        )
        self.jobs.append((ctx, job_id, label))
        return job_id


class Snapshot(Job[Inbox, int]):
    """Fetch the mailbox's messages (the mail API fails the first call), then queue
    their analysis. Returns how many messages were fetched."""

    JOB_TYPE = "snapshot"
    tenant: str
    mailbox: str

    async def execute(self, ctx: Inbox) -> int:
        if self.mailbox in ctx.flaky_mailboxes:
            ctx.flaky_mailboxes.discard(self.mailbox)
            ctx.write(f"  [{self.tenant}] snapshot: mail API timed out (will be retried)")
            raise JobError("mail API timed out")
        count = 40 + len(self.mailbox)
        ctx.write(f"  [{self.tenant}] snapshot: fetched {count} messages")
        await ctx.enqueue(
            QueueCtx(self.tenant), "analysis", Analysis(mailbox=self.mailbox, messages=count)
        )
        return count


class Analysis(Job[Inbox, dict[str, int]]):
    """Label the snapshot's messages."""

    JOB_TYPE = "analysis"
    mailbox: str
    messages: int

    async def execute(self, ctx: Inbox) -> dict[str, int]:
        await asyncio.sleep(0.05)
        return {"invoices": self.messages // 4, "newsletters": self.messages // 2}


class Summaries(Job[Inbox, str]):
    """The scheduled daily summary."""

    JOB_TYPE = "summaries"
    tenant: str
    mailbox: str

    async def execute(self, ctx: Inbox) -> str:
        ctx.write(f"  [{self.tenant}] summaries: daily digest sent (it was scheduled)")
        return f"digest of {self.mailbox}"


class Cleanup(Job[Inbox, int]):
    """Archive old messages, slowly; the demo cancels it while it runs."""

    JOB_TYPE = "cleanup"
    tenant: str
    mailbox: str

    async def execute(self, ctx: Inbox) -> int:
        ctx.cleanup_started.set()
        try:
            archived = 0
            while archived < 600:
                await asyncio.sleep(0.05)
                archived += 1
            return archived
        except asyncio.CancelledError:
            ctx.write(f"  [{self.tenant}] cleanup: task cancelled mid-run (cancel wins)")
            raise


def describe(event: AnyEvent) -> str:
    """One event in a few words."""
    if isinstance(event, Failed):
        return f"failed({event.error})"
    return event.type


async def run_demo(
    directory: Path | None = None, write: Callable[[str], None] = print
) -> dict[str, JobStatus]:
    """Run the pipeline on a SQLite file in `directory` (a temporary one by default);
    return each job's final status by "tenant/label"."""
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="dogqueue-demo-") as temporary:
            return await run_demo(Path(temporary), write)
    started = asyncio.get_running_loop().time()
    path = directory / "inbox.db"
    write(f"dogqueue demo: email-inbox pipeline on {path}")
    async with SqliteBackend(path, config=DEMO_CONFIG) as backend:
        adapter: QueueAdapter[Inbox] = QueueAdapter(backend)
        for job_class in (Snapshot, Analysis, Summaries, Cleanup):
            await adapter.register_job(job_class)
        inbox = Inbox(adapter, write, flaky_mailboxes={TENANTS["acme"]})
        today = utc_now().date().isoformat()

        write("\n1. enqueue snapshots (idempotency key per mailbox and day)")
        for tenant, mailbox in TENANTS.items():
            key = f"snapshot:{mailbox}:{today}"
            job = Snapshot(tenant=tenant, mailbox=mailbox)
            await inbox.enqueue(QueueCtx(tenant), "snapshot", job, idempotency_key=key)
        try:
            await adapter.enqueue(
                QueueCtx("acme"),
                Snapshot(tenant="acme", mailbox=TENANTS["acme"]),
                idempotency_key=f"snapshot:{TENANTS['acme']}:{today}",
            )
        except JobAlreadyExists as duplicate:
            write(
                f"  [acme] duplicate snapshot refused: job {duplicate.job_id} already has the key"
            )

        write(f"2. schedule the daily summaries {SUMMARY_DELAY.total_seconds():.0f}s from now")
        for tenant, mailbox in TENANTS.items():
            run_at = utc_now() + SUMMARY_DELAY
            summary = Summaries(tenant=tenant, mailbox=mailbox)
            await inbox.enqueue(QueueCtx(tenant), "summaries", summary, run_at=run_at)

        write("3. start a cleanup for globex, to be canceled while it runs")
        cleanup = await inbox.enqueue(
            QueueCtx("globex"), "cleanup", Cleanup(tenant="globex", mailbox=TENANTS["globex"])
        )

        write("4. one worker serves both tenants fairly\n")
        async with Worker(adapter, context=inbox, concurrency=4, handle_signals=False):
            await inbox.cleanup_started.wait()
            status = await adapter.cancel_job(QueueCtx("globex"), cleanup)
            write(f"  [globex] cancel_job(cleanup) -> {status.value}")
            await _until_all_terminal(inbox)

        write("\n5. each job's history, from the log")
        statuses: dict[str, JobStatus] = {}
        for ctx, job_id, label in inbox.jobs:
            info = await backend.get_job(ctx, job_id)
            events = await backend.history(ctx, job_id)
            statuses[f"{ctx.tenant_id}/{label}"] = info.status
            write(f"  {ctx.tenant_id:<7} {label:<10} {info.status.value:<10} {job_id}")
            write("      " + " -> ".join(describe(event) for event in events))
    elapsed = asyncio.get_running_loop().time() - started
    write(f"\ndone in {elapsed:.1f}s")
    return statuses


async def _until_all_terminal(inbox: Inbox) -> None:
    while True:
        jobs = list(inbox.jobs)
        statuses = [await inbox.adapter.get_status(ctx, job_id) for ctx, job_id, _ in jobs]
        if len(jobs) == len(inbox.jobs) and all(s in _TERMINAL for s in statuses):
            return
        await asyncio.sleep(0.05)
