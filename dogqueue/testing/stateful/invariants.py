"""The comparisons of the backend's state with the model, run after every step: the
events each step appended, every field of every job, each changed job's history event
by event, and the stored status counts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec

from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.projection import fold, rebuild
from dogqueue.testing.model import CANCELED, ModelJob
from dogqueue.testing.stateful.coverage import compared, drawn
from dogqueue.testing.stateful.operations import Operations

#: The JobInfo fields `check_jobs` compares with the model (waiting_for: check_workflows).
JOB_FIELDS = (
    "job_id",
    "tenant_id",
    "status",
    "message",
    "attempts",
    "result",
    "last_error",
    "created_at",
    "run_at",
    "lease_token",
    "lease_expires_at",
    "finished_at",
    "updated_at",
    "version",
)
_JOB_CHECK = "equal to the model's after every step (check_jobs)"
compared("Backend.projected_jobs", JOB_FIELDS, _JOB_CHECK)
compared("Backend.projected_jobs", "waiting_for", "the model's parents still awaited")
compared(
    "Backend.projected_jobs",
    "enqueue_seq",
    "the log position of the job's enqueued event in read_events()",
)
compared(
    "Backend.get_job",
    [*JOB_FIELDS, "waiting_for"],
    "equal to the projection (so to the model) for each changed job, and to fold(history)",
)
compared("Backend.get_job", "enqueue_seq", "the tenant position of the job's enqueued event")
compared("Backend.get_status", "return", "the model's status (probe_workflows, readers)")
drawn(["Backend.get_job", "Backend.get_status", "Backend.history"], "ctx.tenant_id", "both")
drawn(["Backend.get_job", "Backend.get_status", "Backend.history"], "job_id", "all; 42; other's")
drawn("Backend.read_events", ["after_seq", "limit"], "0/None, and pages of 1 to 3 (paging)")
#: Event fields the model knows exactly, checked event by event in `check_history`.
EVENT_FIELDS = (
    "type",
    "tenant_id",
    "job_id",
    "version",
    "at",
    "message",
    "trace_context",
    "waiting_for",
    "token",
    "attempt",
    "expires_at",
    "progress",
    "progress_message",
    "result",
    "error",
    "retry_at",
    "actor",
    "parent_id",
    "parent_status",
    "reason",
)
compared("Backend.history", EVENT_FIELDS, "each event's fields equal the model's (check_history)")
compared("Backend.history", "seq", "its tenant position: tenant_events, 1..N per tenant")
compared(
    "Backend.read_events",
    [*EVENT_FIELDS, "seq"],
    "set of (tenant, job, type) of each step's new events is the model's; the tenant's"
    " events in order equal history event by event (positions aside); seq increasing",
)
compared("Backend.projected_jobs", "key", "the model's (tenant, job id) keys exactly")


class ModelChecks(Operations):
    """The backend's jobs and events against the model."""

    def check_jobs(self, projected: dict[tuple[str, str], JobInfo]) -> None:
        model_keys = set(self.model.jobs)
        assert set(projected) == model_keys, (
            f"jobs lost: {model_keys - set(projected)}; jobs unknown to the model:"
            f" {set(projected) - model_keys}"
        )
        for key, job in self.model.jobs.items():
            info = projected[key]
            assert key == (info.tenant_id, info.job_id), f"{key} holds {info.job_id}"
            for name, wanted in self.expected_fields(job).items():
                seen = getattr(info, name)
                assert seen == wanted, f"job {job.job_id}: {name} {seen!r} != model {wanted!r}"

    @staticmethod
    def expected_fields(job: ModelJob) -> dict[str, Any]:
        """The JobInfo fields of `job` the model knows."""
        return {
            "status": job.status,
            "attempts": job.attempts,
            "result": job.result,
            "last_error": job.last_error,
            "message": job.message,
            "created_at": job.created_at,
            "run_at": job.run_at,
            "lease_token": job.token,
            "lease_expires_at": job.lease_expires_at,
            "finished_at": job.finished_at,
            "updated_at": job.updated_at,
            "version": len(job.events),
        }

    def check_enqueue_positions(
        self, log: list[AnyEvent], projected: dict[tuple[str, str], JobInfo]
    ) -> None:
        """Each job's `enqueue_seq` is the log position of its enqueued event."""
        positions = {(e.tenant_id, e.job_id): e.seq for e in log if e.type == "enqueued"}
        for key, info in projected.items():
            assert info.enqueue_seq == positions.get(key), (
                f"job {key[1]} enqueue_seq {info.enqueue_seq}; its event is at {positions.get(key)}"
            )

    def check_rebuild(self, log: list[AnyEvent], projected: dict[tuple[str, str], JobInfo]) -> None:
        assert rebuild(log) == projected, "rebuilding from the log differs from the projection"

    def check_status_counts(self, projected: dict[tuple[str, str], JobInfo]) -> None:
        """Where the log keeps job counts per status (SQLite), they are the projection's."""
        reader = self.backend.log_reader()
        try:
            stored = self.run(reader.status_counts())
        finally:
            self.run(reader.close())
        if stored is None:
            return
        counted = Counter((tenant, job.status.value) for (tenant, _), job in projected.items())
        assert stored == dict(counted), f"stored status counts {stored} != the jobs' {counted}"

    def check_new_events(self) -> None:
        """Each step appends exactly the events the model expects: a refused call (stale
        or foreign token, other tenant, existing key) appends nothing."""
        events = self.run(self.backend.read_events(after_seq=self.seen_seq))
        seqs = [event.seq for event in events]
        assert seqs == sorted(set(seqs)), f"log positions not increasing: {seqs}"
        assert not seqs or seqs[0] > self.seen_seq, f"positions {seqs} repeat old ones"
        seen = sorted((e.tenant_id, e.job_id, e.type) for e in events)
        wanted = sorted(self.model.take_expected_events())
        assert seen == wanted, f"appended events {seen} != expected {wanted}"
        if events:
            self.seen_seq = events[-1].seq

    def check_history(self, tenant: str, job_id: str, projected: JobInfo) -> None:
        ctx = QueueCtx(tenant)
        history: list[AnyEvent] = self.run(self.backend.history(ctx, job_id))
        types = [event.type for event in history]
        job = self.model.job(tenant, job_id)
        assert job is not None
        assert types == job.events, f"history of {job_id}: {types} != model {job.events}"
        for event, details in zip(history, job.details, strict=True):
            assert (event.tenant_id, event.job_id) == (tenant, job_id), f"{event!r}"
            for name, wanted in details.items():
                seen = getattr(event, name)
                assert seen == wanted, (
                    f"{event.type} event of {job_id}: {name} {seen!r} != model {wanted!r}"
                )
        versions = [event.version for event in history]
        assert versions == list(range(1, len(history) + 1)), f"{job_id} versions {versions}"
        if CANCELED in types and "requeued" not in types[types.index(CANCELED) :]:
            after = types[types.index(CANCELED) + 1 :]  # cancel wins
            assert not {"completed", "failed", "leased"} & set(after), f"{job_id}: {types}"
        if job.status == "completed":
            assert types.count("completed") == 1, f"{job_id}: {types}"
        # The tenant's view (history, get_job) is in tenant positions; the projection is
        # in log positions: they may differ only in `enqueue_seq`.
        mine = self.run(self.backend.get_job(ctx, job_id))
        assert fold(history) == mine, f"folding the history of {job_id} != get_job"
        assert mine == msgspec.structs.replace(projected, enqueue_seq=mine.enqueue_seq)
        assert mine.enqueue_seq == history[0].seq, f"{job_id}: enqueue_seq {mine.enqueue_seq}"
        status = self.run(self.backend.get_status(ctx, job_id))
        assert status == job.status, f"get_status of {job_id}: {status}, model {job.status}"
