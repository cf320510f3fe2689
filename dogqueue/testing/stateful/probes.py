"""The probes every example starts with, and the misuse rules: every refusal of every
method provoked (stale and foreign tokens, other tenants, taken keys, malformed input, a
closed backend), so a backend that swallows one is caught in the first example."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, multiple, rule

from dogqueue.core.job import Completion, LeasedJob
from dogqueue.core.message import QueueCtx
from dogqueue.core.status import JobPriority
from dogqueue.testing.model import Refusal
from dogqueue.testing.stateful.common import (
    BAD_CALLS,
    CLOSED_CALLS,
    CONFIG,
    JOBS,
    KEYS,
    LEASE_OPERATIONS,
    LEASES,
    QUEUES,
    UNKNOWN_JOB_ID,
    VALID,
    Call,
    lease_calls,
    priorities,
    queue_lists,
    replace,
    tenants,
)
from dogqueue.testing.stateful.operations import Operations


class Probes(Operations):
    """Refusals, provoked at the start of every example and by rules."""

    def do_settle_probe(self, tenant: str, queue: str, older: int) -> list[LeasedJob]:
        """One batch holding every kind of acknowledgement: valid ones around a canceled
        job, a stale token, another tenant's lease and an unknown job. Each refusal must
        stay its own; return the leases taken."""
        self.enqueue_due_now(tenant, queue, JobPriority.HIGH, 4)
        first, canceled, failing, last = self.do_dequeue(tenant, (queue,), None, 4)[:4]
        other = self.other_tenant(tenant)
        self.enqueue_due_now(other, queue, JobPriority.HIGH, 1)
        foreign = self.do_dequeue(other, (queue,), None)[0]
        self.do_cancel(canceled.job_id, "ops")
        stale = replace(failing, lease_token=max(failing.lease_token - older, 0))
        unknown = replace(last, job_id=UNKNOWN_JOB_ID)
        picks = [
            (first, False, False),
            (canceled, False, False),
            (stale, True, False),
            (foreign, False, False),
            (unknown, False, False),
            (failing, True, False),
            (last, False, False),
        ]
        self.do_settle(tenant, picks)
        self.do_requeue(canceled.job_id, True, "admin")  # the operator's override
        return [foreign]

    def probe_options(self, tenant: str, queue: str) -> list[LeasedJob]:
        """Every optional argument once with a value other than its default: a traced
        enqueue, lease durations, a heartbeat with progress, a failure to retry, a
        result; return the leases taken."""
        while ready := self.do_dequeue(tenant, (queue,), None, 4):  # start from an empty queue
            for lease in ready:
                self.do_complete(lease, None)
        trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        retried = [  # the first due half a second ago
            replace(self.message(self.varied(queue, 2, i)), max_retries=2) for i in (2, 0, 1, 3, 4)
        ]
        self.do_enqueue(tenant, retried[0], trace_context=trace)
        self.do_enqueue_many(tenant, retried[1:])
        leases = self.do_dequeue(tenant, (queue,), 2)
        leases += self.do_dequeue(tenant, (queue,), 10, 4)
        self.do_heartbeat(leases[0], 60, 0.5, "half way")
        self.do_heartbeat(leases[0], 30, 1.0, "done")
        self.do_fail(leases[1], False, "gave up")  # with retries left
        self.do_complete(leases[2], b"\x00result")
        self.do_cancel(leases[3].job_id, "ops")
        self.do_settle(tenant, [(leases[4], True, False)])
        # A retried job leased with a fresh one: leases of one call with other attempts.
        self.do_fail(leases[0], True, "try again")
        self.adopt_retry_times()
        self.clock.advance(timedelta(seconds=1))
        self.do_enqueue(tenant, retried[1])
        again = self.do_dequeue(tenant, (queue,), None, 2)
        for lease in again:  # a second failure, with another error and retry time
            if lease.job_id == leases[0].job_id:
                self.do_fail(lease, True, "failed again")
        return leases + again

    @rule(job_id=JOBS)
    def act_as_other_tenant(self, job_id: str) -> None:
        """Every call with another tenant's job id or lease, and every lease call on a
        job id no one issued: JobNotFound, and nothing changes."""
        self.do_act_as_other_tenant(job_id)

    def do_act_as_other_tenant(self, job_id: str) -> None:
        owner = self.owner[job_id]
        job = self.model.job(owner, job_id)
        assert job is not None
        # The job's latest lease as its holder would present it (token 1 if never leased).
        lease = LeasedJob(
            job_id=job_id,
            tenant_id=owner,
            message=VALID,
            lease_token=max(job.token, 1),
            lease_expires_at=job.lease_expires_at or self.clock(),
            attempt=max(job.attempts, 1),
        )
        other = QueueCtx(self.other_tenant(owner))
        unknown = replace(lease, job_id=UNKNOWN_JOB_ID)
        calls: list[Call] = [
            lambda b: b.get_job(other, job_id),
            lambda b: b.get_status(other, job_id),
            lambda b: b.history(other, job_id),
            lambda b: b.cancel_job(other, job_id),
            lambda b: b.retry_job(other, job_id),
            lambda b: b.cancel_workflow(other, job_id),
        ]
        calls += lease_calls(other, lease) + lease_calls(QueueCtx(owner), unknown)
        for call in calls:
            self.expect_refusal(call(self.backend), Refusal("not_found"))

    @rule(tenant=tenants, queues=queue_lists, older=st.integers(1, 2))
    def lease_and_misuse(self, tenant: str, queues: tuple[str, ...], older: int) -> None:
        """Lease a job and use the lease every way with an older token (always refused,
        never taken for the current one); then cancel the job and use the lease every
        way with its own token (cancel wins)."""
        self.do_lease_and_misuse(tenant, queues, older)

    def do_lease_and_misuse(self, tenant: str, queues: tuple[str, ...], older: int) -> None:
        for lease in self.do_dequeue(tenant, queues, None):
            stale = replace(lease, lease_token=max(lease.lease_token - older, 0))
            for operation in LEASE_OPERATIONS:
                self.use_lease(stale, operation)
            self.do_cancel(lease.job_id)
            for operation in LEASE_OPERATIONS:
                self.use_lease(lease, operation)

    @initialize(
        target=LEASES,
        tenant=tenants,
        queue=st.sampled_from(QUEUES),
        priority=priorities,
        older=st.integers(1, 2),
    )
    def probe_every_refusal(self, tenant: str, queue: str, priority: int, older: int) -> Any:
        """Each example starts by provoking every refusal of every method once, so a
        backend that swallows one, answers for another tenant, takes a stale token or
        reorders jobs is caught in the first example (properties/broken.py):

        jobs leave by priority, then in enqueue order (`dequeue_many`, then `dequeue`,
        the last call finding nothing ready though jobs are leased); a leased job
        refuses older tokens and then, canceled, its own; another tenant finds none of
        them; a taken idempotency key, a retry of a leased job, malformed input and a
        closed backend are refused."""
        # Jobs of one priority and of another, enqueued so that enqueue order alone
        # would be wrong: HIGH ones enqueued last must leave first, LOW ones enqueued
        # first must leave last.
        if priority < JobPriority.HIGH:
            self.enqueue_due_now(tenant, queue, priority, 3)
            self.enqueue_due_now(tenant, queue, JobPriority.HIGH, 2)
        else:
            self.enqueue_due_now(tenant, queue, JobPriority.LOW, 2)
            self.enqueue_due_now(tenant, queue, priority, 3)
        leases = self.do_dequeue(tenant, (queue,), None, 5)
        self.enqueue_due_now(tenant, queue, priority, 2)
        leases += [lease for _ in range(3) for lease in self.do_dequeue(tenant, (queue,), None)]
        self.enqueue_due_now(tenant, queue, priority, 1)
        self.do_lease_and_misuse(tenant, (queue,), older)
        leases += self.do_settle_probe(tenant, queue, older)
        self.do_act_as_other_tenant(leases[0].job_id)
        self.expect_refusal(
            self.backend.retry_job(QueueCtx(tenant), leases[0].job_id), Refusal("transition")
        )
        self.probe_keys_and_batches(tenant, queue, priority)
        leases += self.probe_options(tenant, queue)
        self.refuse_bad_input_and_closed_backends()
        return multiple(*leases)

    def probe_keys_and_batches(self, tenant: str, queue: str, priority: int) -> None:
        """An idempotency key is held over its job's whole life (taken twice while the
        job waits, and again once it ended); a batch with one refused message or
        settlement of each kind appends nothing of the rest."""
        ctx = QueueCtx(tenant)
        keyed = self.message((queue, priority, None, KEYS[0], 0))
        self.record_enqueued(tenant, self.run(self.backend.enqueue(ctx, keyed)), keyed)
        taken = self.model.check_enqueue(tenant, [KEYS[0]])
        assert taken is not None and taken.job_id is not None
        self.expect_refusal(self.backend.enqueue(ctx, keyed), taken)
        fresh = self.message((queue, priority, None, None, 0))
        self.expect_refusal(self.backend.enqueue_many(ctx, [fresh, keyed]), taken)
        self.do_cancel(taken.job_id)
        self.expect_refusal(self.backend.enqueue(ctx, keyed), taken)
        twice = replace(fresh, idempotency_key=KEYS[1])
        foreign = self.run(self.backend.enqueue(QueueCtx(self.other_tenant(tenant)), VALID))
        self.record_enqueued(self.other_tenant(tenant), foreign, VALID)
        for batch in (
            [fresh, twice, twice],  # a key twice in one batch
            [fresh, replace(fresh, after=(foreign,))],  # a parent of another tenant
            [fresh, replace(fresh, max_retries=-1)],  # a malformed field
        ):
            self.expect_refusal(self.backend.enqueue_many(ctx, batch), Refusal("invalid"))
        for lease in self.do_dequeue(tenant, QUEUES, None):
            self.expect_refusal(
                self.backend.settle_many(ctx, [Completion(lease=lease), "no"]),  # type: ignore[list-item]
                Refusal("invalid"),
            )
            self.do_complete(lease, b"kept")

    def refuse_bad_input_and_closed_backends(self) -> None:
        """Every method refuses malformed input with InvalidInput, appending nothing;
        a closed backend (a fresh one from the factory) refuses every call with
        BackendClosed."""
        for call in BAD_CALLS.values():
            self.expect_refusal(call(self.backend), Refusal("invalid"))
        closed = self.factory(clock=self.clock, config=CONFIG)
        try:
            self.run(closed.open())
            self.run(closed.close())
            for call in CLOSED_CALLS.values():
                self.expect_refusal(call(closed), Refusal("closed"))
        finally:
            self.discard(closed)
