"""Workflows: jobs that run after other jobs (`after`, `after_earlier`,
`on_parent_failure`), `cancel_workflow`, and the invariant on the log that no dependent
runs early."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, multiple, rule

from dogqueue.core.events import AnyEvent, Enqueued, Expired, Failed, ParentFinished
from dogqueue.core.job import JobInfo
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobPriority
from dogqueue.testing.model import Refusal
from dogqueue.testing.stateful.common import (
    JOBS,
    QUEUES,
    VALID,
    MessageSpec,
    message_specs,
    replace,
    tenants,
)
from dogqueue.testing.stateful.coverage import compared, drawn
from dogqueue.testing.stateful.operations import Operations

drawn("Backend.cancel_workflow", ["ctx.tenant_id", "job_id"], "every job; other tenant; 42")
compared("Backend.cancel_workflow", "return", "exactly the model's live descendants")


class Workflows(Operations):
    """Workflow rules and checks."""

    @rule(
        target=JOBS,
        tenant=tenants,
        spec=message_specs,
        parents=st.lists(JOBS, max_size=3, unique=True),
        run_anyway=st.booleans(),
    )
    def enqueue_after(
        self,
        tenant: str,
        spec: MessageSpec,
        parents: list[str],
        run_anyway: bool,
    ) -> Any:
        """A job after earlier jobs (some perhaps another tenant's: refused)."""
        message = replace(
            self.message(spec),
            after=tuple(parents),
            on_parent_failure="run" if run_anyway else "cancel",
        )
        return self.do_enqueue(tenant, message)

    @rule(
        target=JOBS,
        tenant=tenants,
        specs=st.lists(message_specs, min_size=1, max_size=3),
        chained=st.booleans(),
        run_anyway=st.booleans(),
    )
    def enqueue_chord(
        self,
        tenant: str,
        specs: list[MessageSpec],
        chained: bool,
        run_anyway: bool,
    ) -> Any:
        """A group and a job after all of it, or a chain, in one call."""
        messages = [self.message(spec) for spec in specs]
        if chained:
            messages = [
                replace(m, after_earlier=(i - 1,) if i else ()) for i, m in enumerate(messages)
            ]
        policy = "run" if run_anyway else "cancel"
        messages.append(
            replace(
                VALID,
                queue=QUEUES[0],
                max_retries=0,
                after_earlier=tuple(range(len(messages))),
                on_parent_failure=policy,
            )
        )
        return self.do_enqueue_many(tenant, messages)

    @rule(job_id=JOBS, actor=st.sampled_from([None, "ops", "admin"]))
    def cancel_workflow(self, job_id: str, actor: str | None) -> None:
        tenant = self.owner[job_id]
        job = self.model.job(tenant, job_id)
        assert job is not None
        ctx = QueueCtx(tenant)
        canceled = self.run(self.backend.cancel_workflow(ctx, job_id, actor=actor))
        expected = self.model.cancel_workflow(job, actor=actor)
        assert sorted(canceled) == sorted(expected), (
            f"cancel_workflow canceled {canceled}, expected {expected}"
        )

    @initialize(target=JOBS, tenant=tenants, queue=st.sampled_from(QUEUES))
    def probe_workflows(self, tenant: str, queue: str) -> Any:
        """Each example also starts with a small workflow run to its end: a chord whose
        fan-in must wait for both parts and is canceled when one fails, a dependent
        that opted in and runs anyway, a job after another tenant's job (refused), and
        a chain canceled whole."""
        ctx = QueueCtx(tenant)
        foreign = self.run(self.backend.enqueue(QueueCtx(self.other_tenant(tenant)), VALID))
        self.record_enqueued(self.other_tenant(tenant), foreign, VALID)
        part = self.message((queue, int(JobPriority.HIGH), None, None, 0))
        chord = [part, part, replace(part, after_earlier=(0, 1))]
        ids = self.run(self.backend.enqueue_many(ctx, chord))
        for job_id, message in zip(ids, chord, strict=True):
            self.record_enqueued(tenant, job_id, message, ids)
        anyway = replace(part, after=(ids[0], ids[1]), on_parent_failure="run")
        watched = [*ids, self.run(self.backend.enqueue(ctx, anyway))]
        self.record_enqueued(tenant, watched[-1], anyway)
        self.expect_refusal(
            self.backend.enqueue(ctx, replace(part, after=(foreign, ids[0]))),
            Refusal("invalid"),
        )
        for _ in range(len(self.model.jobs)):  # the first part completes, the second fails
            leases = self.do_dequeue(tenant, (queue,), None)
            if not leases:
                break
            if leases[0].job_id == ids[1]:
                self.do_fail(leases[0], False)
            else:
                self.do_complete(leases[0], b"ok")
            if leases[0].job_id not in watched:
                continue  # an earlier job of the same priority: nothing to compare yet
            for job_id in watched:  # no dependent is released a step early
                status = self.run(self.backend.get_status(ctx, job_id))
                job = self.model.job(tenant, job_id)
                assert job is not None and status == job.status, (
                    f"job {job_id} is {status}; the model says {job.status if job else None}"
                )
            if leases[0].job_id == watched[-1]:
                break  # the opted-in dependent ran: the workflow is over
        steps = [
            part,
            replace(part, after_earlier=(0,)),
            replace(part, after_earlier=(1,), on_parent_failure="run"),
        ]
        chain = self.run(self.backend.enqueue_many(ctx, steps))
        for job_id, message in zip(chain, steps, strict=True):
            self.record_enqueued(tenant, job_id, message, chain)
        self.cancel_workflow(chain[0], "ops")
        return multiple(*ids, *chain)

    def check_workflows(self, log: list[AnyEvent], projected: dict[Any, JobInfo]) -> None:
        """No job is leased before all its parents completed, and a dependent of a
        failed or canceled parent never runs unless it opted in or an operator requeued
        it (from the log alone);
        the replayed workflow state (the parents each job still waits for) is the
        model's."""
        completed: dict[tuple[str, str], int] = {}
        ended: dict[tuple[str, str], int] = {}
        overridden: set[tuple[str, str]] = set()  # requeued by an operator: runs anyway
        for event in log:
            key = (event.tenant_id, event.job_id)
            if event.type == "requeued":
                overridden.add(key)
            if isinstance(event, Enqueued) and (event.message.after or event.waiting_for):
                assert set(event.waiting_for) <= set(event.message.after)
            ending = (
                event.type in ("completed", "canceled")
                or (isinstance(event, (Failed, Expired)) and event.retry_at is None)
                or (  # canceled with a parent that did not complete
                    isinstance(event, ParentFinished)
                    and event.parent_status != "completed"
                    and projected[key].message.on_parent_failure != "run"
                )
            )
            if ending:
                ended.setdefault(key, event.seq)
            if event.type == "completed":
                completed.setdefault(key, event.seq)
            if event.type == "leased" and key not in overridden:
                info = projected[key]
                for parent in info.message.after:
                    parent_key = (event.tenant_id, parent)
                    if info.message.on_parent_failure == "run":
                        assert ended.get(parent_key, event.seq) < event.seq, (
                            f"{event.job_id} leased before its parent {parent} ended"
                        )
                    else:
                        assert completed.get(parent_key, event.seq) < event.seq, (
                            f"{event.job_id} leased though its parent {parent} had not completed"
                        )
        for key, job in self.model.jobs.items():
            waiting = projected[key].waiting_for
            assert waiting == tuple(job.waiting), (
                f"job {job.job_id} waits for {waiting}; the model says {job.waiting}"
            )
