"""Each contract call as the state machine makes it: the call, the model's answer, and
the comparison of every returned field with the model. Rules (rules.py, probes.py,
workflows.py) only draw arguments and call these."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis.stateful import multiple

from dogqueue.core.errors import QueueError
from dogqueue.core.job import Completion, Failure, LeasedJob, Settlement
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.testing.model import ENQUEUED, ModelAck, ModelJob, Refusal
from dogqueue.testing.stateful.base import MachineBase
from dogqueue.testing.stateful.common import (
    CODECS,
    CONFIG,
    JOB_TYPES,
    PAYLOADS,
    REFUSALS,
    MessageSpec,
)
from dogqueue.testing.stateful.coverage import called, compared, drawn

T = TypeVar("T")

#: How long a waiter started before a waking call may wait, and how soon after the call
#: it must have returned (real seconds: a waiter that is never woken costs this once).
WAKE_MAX_WAIT = 30.0
WAKE_GRACE = 3.0

drawn("Backend.wait_for_change", "max_wait", "30 s, the waiter started before each waking call")
called(
    "Backend.wait_for_change",
    "a waiter started before every enqueue, enqueue_many, release and retry_job must"
    " return within 3 s of it (run_waking)",
)
drawn(
    "Backend.settle_many",
    ["ctx.tenant_id", "settlements.lease"],
    "any leases handed out, as the first one's tenant: current, stale, canceled, foreign,"
    " unknown (do_settle_probe), and a malformed entry",
)
drawn("Backend.settle_many", "settlements.result", "b'ok' and non-UTF-8 bytes, per entry")
drawn("Backend.settle_many", "settlements.error", "a distinct error per entry")
drawn("Backend.settle_many", "settlements.retry", "True and False")
compared("Backend.settle_many", "return", "per entry, the model's status or refusal")


async def _finished(task: asyncio.Task[None]) -> None:
    """Wait for a canceled task to end."""
    await asyncio.gather(task, return_exceptions=True)


class Operations(MachineBase):
    """The contract calls, each checked against the model."""

    #: Jobs `enqueue_due_now` made so far (each gets the next type, payload and codec).
    due_count = 0

    def run_waking(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a call that makes a job leasable: a `wait_for_change` started before it
        must return soon after it (the contract's wake-up)."""
        waiter = self.loop.create_task(self.backend.wait_for_change(WAKE_MAX_WAIT))
        for _ in range(3):  # let the waiter register before the call
            self.run(asyncio.sleep(0))
        try:
            result = self.run(coroutine)
        except BaseException:
            waiter.cancel()
            self.run(_finished(waiter))
            raise
        try:
            self.run(asyncio.wait_for(waiter, WAKE_GRACE))
        except TimeoutError:
            raise AssertionError(
                "wait_for_change was not woken by a call that made a job leasable"
            ) from None
        return result

    def do_enqueue(
        self, tenant: str, message: JobMessage, trace_context: dict[str, str] | None = None
    ) -> Any:
        """`enqueue` one message, refused as the model says (a taken key, a parent
        that is not the tenant's)."""
        refusal = self.model.check_enqueue(tenant, [message.idempotency_key])
        refusal = refusal or self.model.check_parents(tenant, list(message.after))
        call = self.backend.enqueue(QueueCtx(tenant), message, trace_context=trace_context)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return multiple()
        job_id = self.run_waking(call)
        assert isinstance(job_id, str) and job_id not in self.owner, f"enqueue gave {job_id!r}"
        self.record_enqueued(tenant, job_id, message)
        self.model.jobs[(tenant, job_id)].details[0]["trace_context"] = trace_context
        return job_id

    def do_enqueue_many(self, tenant: str, messages: list[JobMessage]) -> Any:
        """`enqueue_many`, all or none, refused as the model says."""
        refusal = self.model.check_enqueue(tenant, [m.idempotency_key for m in messages])
        call = self.backend.enqueue_many(QueueCtx(tenant), messages)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return multiple()
        job_ids = self.run_waking(call)
        assert len(job_ids) == len(messages), f"enqueue_many gave {job_ids!r}"
        assert len(set(job_ids)) == len(job_ids), "enqueue_many issued one id twice"
        assert not set(job_ids) & set(self.owner), "enqueue_many reissued an existing id"
        for job_id, message in zip(job_ids, messages, strict=True):
            self.record_enqueued(tenant, job_id, message, job_ids)
        return multiple(*job_ids)

    def do_dequeue(
        self, tenant: str, queues: Sequence[str], seconds: float | None, n: int | None = None
    ) -> list[LeasedJob]:
        """`dequeue` (n None) or `dequeue_many(n)`: the leases must be exactly the
        model's next jobs, in order, every field as the model says."""
        now = self.clock()
        self.model.expire(tenant, now)
        expected = self.model.ready_in_order(tenant, list(queues), now)[: n or 1]
        duration = None if seconds is None else timedelta(seconds=seconds)
        ctx = QueueCtx(tenant)
        if n is None:
            lease = self.run(self.backend.dequeue(ctx, list(queues), lease_duration=duration))
            leases = [] if lease is None else [lease]
            assert lease is None or isinstance(lease, LeasedJob), f"dequeue returned {lease!r}"
        else:
            leases = self.run(
                self.backend.dequeue_many(ctx, list(queues), n, lease_duration=duration)
            )
            assert isinstance(leases, list), f"dequeue_many returned {leases!r}"
        got = [lease.job_id for lease in leases]
        wanted = [job.job_id for job in expected]
        assert got == wanted, (
            f"dequeue leased {got}; the model's next jobs are {wanted}"
            f" (priority, run_at, enqueue order)"
        )
        for lease, job in zip(leases, expected, strict=True):
            self.check_lease_fields(lease, job)
            assert lease.lease_token > job.token, "a lease token was reused"
            assert lease.attempt == job.attempts + 1, f"lease attempt {lease.attempt}"
            expires = now + (duration or CONFIG.default_lease_duration)
            assert lease.lease_expires_at == expires, f"lease ends {lease.lease_expires_at}"
            self.model.lease(job, lease.lease_token, lease.lease_expires_at)
        return leases

    @staticmethod
    def check_lease_fields(lease: LeasedJob, job: ModelJob) -> None:
        """A lease names the model's job, of its tenant, with the message as stored."""
        assert (lease.job_id, lease.tenant_id) == (job.job_id, job.tenant), (
            f"lease of {lease.tenant_id}/{lease.job_id}; the job is {job.tenant}/{job.job_id}"
        )
        assert lease.message == job.message, (
            f"lease of {job.job_id} carries {lease.message!r}; enqueued {job.message!r}"
        )

    def do_heartbeat(
        self,
        lease: LeasedJob,
        seconds: float | None,
        progress: float | None = None,
        note: str | None = None,
    ) -> Any:
        now = self.clock()
        refusal = self.model.check_lease(lease.tenant_id, lease.job_id, lease.lease_token, now)
        duration = None if seconds is None else timedelta(seconds=seconds)
        call = self.backend.heartbeat(
            QueueCtx(lease.tenant_id),
            lease,
            lease_duration=duration,
            progress=progress,
            progress_message=note,
        )
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return multiple()
        extended = self.run(call)
        job = self.model.job(lease.tenant_id, lease.job_id)
        assert job is not None and isinstance(extended, LeasedJob), f"heartbeat: {extended!r}"
        self.check_lease_fields(extended, job)
        assert extended.lease_token == lease.lease_token, "heartbeat changed the token"
        assert extended.attempt == lease.attempt, "heartbeat changed the attempt"
        expires = now + (duration or CONFIG.default_lease_duration)
        assert extended.lease_expires_at == expires, f"heartbeat: {extended.lease_expires_at}"
        self.model.heartbeat(job, expires, progress=progress, progress_message=note)
        return extended

    def do_complete(self, lease: LeasedJob, result: bytes | None) -> None:
        refusal = self.model.check_lease(
            lease.tenant_id, lease.job_id, lease.lease_token, self.clock()
        )
        call = self.backend.ack_complete(QueueCtx(lease.tenant_id), lease, result)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return
        self.run(call)
        job = self.model.job(lease.tenant_id, lease.job_id)
        assert job is not None
        self.model.complete(job, result)

    def do_fail(self, lease: LeasedJob, retry: bool, error: str = "boom") -> None:
        now = self.clock()
        refusal = self.model.check_lease(lease.tenant_id, lease.job_id, lease.lease_token, now)
        call = self.backend.ack_fail(QueueCtx(lease.tenant_id), lease, error, retry=retry)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return
        status = self.run(call)
        job = self.model.job(lease.tenant_id, lease.job_id)
        assert job is not None
        expected = self.model.fail(job, error, retry, now)
        assert status == expected, f"ack_fail returned {status}, expected {expected}"

    def do_settle(self, tenant: str, picks: Sequence[tuple[LeasedJob, bool, bool]]) -> None:
        """`settle_many` as `tenant` of leases, each (lease, failed?, retry?): each one is
        settled or refused exactly as the model says, on its own."""
        now = self.clock()
        settlements: list[Settlement] = []
        acks: list[ModelAck] = []
        for index, (lease, failed, retry) in enumerate(picks):
            if failed:
                error = f"boom {index}"
                settlements.append(Failure(lease=lease, error=error, retry=retry))
                acks.append(ModelAck(lease.job_id, lease.lease_token, error=error, retry=retry))
            else:
                result = b"ok\xff%d" % index
                settlements.append(Completion(lease=lease, result=result))
                acks.append(ModelAck(lease.job_id, lease.lease_token, result=result))
        expected = self.model.settle(tenant, acks, now)
        try:
            results = self.run(self.backend.settle_many(QueueCtx(tenant), settlements))
        except QueueError as error:
            raise AssertionError(
                f"settle_many raised {error!r}; a refusal belongs in its entry of the result"
            ) from error
        assert isinstance(results, list) and len(results) == len(expected), (
            f"settle_many returned {results!r} for {len(expected)} settlements"
        )
        for index, (got, wanted) in enumerate(zip(results, expected, strict=True)):
            if isinstance(wanted, Refusal):
                refused = REFUSALS[wanted.kind]
                assert isinstance(got, refused), (
                    f"settle_many[{index}] gave {got!r}; expected {refused.__name__}"
                    f" ({wanted.kind})"
                )
            else:
                assert got == wanted, f"settle_many[{index}] gave {got!r}, expected {wanted}"

    def do_release(self, lease: LeasedJob) -> None:
        now = self.clock()
        refusal = self.model.check_lease(lease.tenant_id, lease.job_id, lease.lease_token, now)
        call = self.backend.release(QueueCtx(lease.tenant_id), lease)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return
        self.run_waking(call)
        job = self.model.job(lease.tenant_id, lease.job_id)
        assert job is not None
        self.model.release(job)

    def do_cancel(self, job_id: str, actor: str | None = None) -> None:
        tenant = self.owner[job_id]
        job = self.model.job(tenant, job_id)
        assert job is not None
        status = self.run(self.backend.cancel_job(QueueCtx(tenant), job_id, actor=actor))
        expected = self.model.cancel(job, actor=actor)
        assert status == expected, f"cancel_job returned {status}, expected {expected}"

    def do_requeue(self, job_id: str, include_canceled: bool, actor: str | None) -> None:
        """`retry_job`, with or without the operator's override out of CANCELED."""
        tenant = self.owner[job_id]
        job = self.model.job(tenant, job_id)
        assert job is not None
        refusal = self.model.check_requeue(job, include_canceled)
        call = self.backend.retry_job(
            QueueCtx(tenant), job_id, include_canceled=include_canceled, actor=actor
        )
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return
        status = self.run_waking(call)
        self.model.requeue(job, self.clock(), actor=actor)
        assert status == ENQUEUED, f"retry_job returned {status}"

    def do_reap(self) -> None:
        expected = self.model.expire(None, self.clock())
        count = self.run(self.backend.reap_expired())
        assert count == len(expected), f"reaped {count} leases, expected {len(expected)}"

    def do_rebuild(self) -> None:
        before = self.run(self.backend.projected_jobs())
        folded = self.run(self.backend.rebuild_projections())
        assert folded == len(self.run(self.backend.read_events())), f"folded {folded}"
        assert self.run(self.backend.projected_jobs()) == before, "rebuild changed a job"

    def enqueue_due_now(self, tenant: str, queue: str, priority: int, n: int) -> list[str]:
        """Enqueue `n` jobs of one priority, due now, in one batch, each of another job
        type, payload and codec, every other one with a retry left."""
        first, self.due_count = self.due_count, self.due_count + n
        messages = [self.message(self.varied(queue, priority, i)) for i in range(first, first + n)]
        job_ids = self.run(self.backend.enqueue_many(QueueCtx(tenant), messages))
        for job_id, message in zip(job_ids, messages, strict=True):
            self.record_enqueued(tenant, job_id, message)
        return job_ids

    @staticmethod
    def varied(queue: str, priority: int, i: int) -> MessageSpec:
        """The `i`th of a series of specs due now, each of another job type, payload and
        codec, every other one with a retry left."""
        return MessageSpec(
            queue,
            priority,
            -0.5 if i % 3 == 2 else None,  # due half a second ago, or now
            None,
            i % 2,
            JOB_TYPES[i % len(JOB_TYPES)],
            PAYLOADS[i % len(PAYLOADS)],
            CODECS[i % len(CODECS)],
        )

    def use_lease(self, lease: LeasedJob, operation: str) -> None:
        """One lease operation, checked against the model like its own rule."""
        if operation == "heartbeat":
            self.do_heartbeat(lease, None)
        elif operation == "ack_complete":
            self.do_complete(lease, b"ok")
        elif operation == "ack_fail":
            self.do_fail(lease, False)
        else:
            self.do_release(lease)
