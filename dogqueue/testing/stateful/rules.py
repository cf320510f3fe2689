"""The lifecycle rules: enqueue, lease, heartbeat, settle, release, cancel, requeue,
reap, clock moves, drain, rebuild and reopen, each drawing its arguments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import multiple, precondition, rule

from dogqueue.core.job import LeasedJob
from dogqueue.testing.model import TERMINAL
from dogqueue.testing.stateful.common import (
    JOBS,
    LEASES,
    QUEUES,
    TENANTS,
    MessageSpec,
    lease_seconds,
    message_specs,
    queue_lists,
    tenants,
)
from dogqueue.testing.stateful.coverage import compared, drawn, reasoned
from dogqueue.testing.stateful.operations import Operations

_ENQUEUES = ("Backend.enqueue", "Backend.enqueue_many")
drawn([*_ENQUEUES, "Backend.dequeue", "Backend.dequeue_many"], "ctx.tenant_id", "two tenants")
drawn(
    ["Backend.heartbeat", "Backend.ack_complete", "Backend.ack_fail", "Backend.release"],
    "ctx.tenant_id",
    "the lease's tenant, and the other one (act_as_other_tenant)",
)
for _method, _param in (("Backend.enqueue", "message"), ("Backend.enqueue_many", "messages")):
    drawn(_method, f"{_param}.job_type", "three job types, one not ASCII")
    drawn(_method, f"{_param}.payload_bytes", "four payloads: JSON, empty, non-UTF-8 bytes")
    drawn(_method, f"{_param}.queue", "two queues (and '' refused)")
    drawn(_method, f"{_param}.priority", "every JobPriority")
    drawn(_method, f"{_param}.max_retries", "0, 1, 2")
    drawn(_method, f"{_param}.run_at", "None, past, now, +0.5 s, +5 s, +60.25 s")
    drawn(_method, f"{_param}.idempotency_key", "None or one of three keys (so they collide)")
    drawn(_method, f"{_param}.codec", "the default 'json' only: the codec is opaque to storage")
drawn("Backend.enqueue", "message.after", "up to three earlier jobs, another tenant's among them")
drawn("Backend.enqueue", "message.on_parent_failure", "cancel and run")
drawn("Backend.enqueue", "message.after_earlier", "() only: refused outside enqueue_many")
drawn("Backend.enqueue_many", "messages.after", "parents of the bundle (probe_workflows)")
drawn("Backend.enqueue_many", "messages.after_earlier", "chains and chords (enqueue_chord)")
drawn("Backend.enqueue_many", "messages.on_parent_failure", "cancel and run")
drawn("Backend.enqueue", "trace_context", "None and a W3C traceparent (enqueue_traced)")
drawn(["Backend.dequeue", "Backend.dequeue_many"], "queues", "each queue and both")
drawn(
    ["Backend.dequeue", "Backend.dequeue_many", "Backend.heartbeat"],
    "lease_duration",
    "None (the default), 0.75 s, 2 s, 10 s, 60 s",
)
drawn("Backend.dequeue_many", "n", "2 to 4, 5 in the first probe (more than are ready)")
drawn(
    ["Backend.heartbeat", "Backend.ack_complete", "Backend.ack_fail", "Backend.release"],
    ["lease.job_id", "lease.tenant_id", "lease.lease_token"],
    "every lease ever handed out: current, stale, expired, canceled, foreign, unknown id",
)
drawn(
    ["Backend.heartbeat", "Backend.ack_complete", "Backend.ack_fail", "Backend.release"],
    ["lease.message", "lease.lease_expires_at", "lease.attempt"],
    "as handed out, and a placeholder message/expiry (act_as_other_tenant): not fenced on",
)
_HOLD = (
    "not drawn yet (the model knows no deploy holds, so every release is a plain one):"
    " the shipped dogqueue/testing/conformance/test_release_reason.py records a reason and"
    " an until in the released event and refuses bad ones, on every backend"
)
reasoned("Backend.release", "param", ["reason", "until"], _HOLD)
reasoned(["Backend.history", "Backend.read_events"], "field", "until", _HOLD)
reasoned(
    ["Backend.history", "Backend.read_events"],
    "field",
    ["queue", "schedule"],
    "control events (pause, resume, run now: dogqueue.controls) are not drawn yet: the"
    " shipped dogqueue/testing/conformance/test_controls.py appends them and reads them"
    " back through every event read, on every backend",
)
drawn("Backend.heartbeat", "progress", "None, 0.0, 0.5, 1.0")
drawn("Backend.heartbeat", "progress_message", "None, '', 'half way é'")
drawn("Backend.ack_complete", "result", "None, b'', b'ok', non-UTF-8 bytes")
drawn("Backend.ack_fail", "error", "'boom', '', 'no \u2013 ascii'")
drawn("Backend.ack_fail", "retry", "True and False")
drawn(
    ["Backend.cancel_job", "Backend.retry_job", "Backend.cancel_workflow"],
    "actor",
    "None, 'ops', 'admin'",
)
drawn(["Backend.cancel_job", "Backend.retry_job"], "ctx.tenant_id", "owner and other tenant")
drawn(["Backend.cancel_job", "Backend.retry_job"], "job_id", "every job, an unknown id, 42")
drawn("Backend.retry_job", "include_canceled", "False and True (the operator's override)")
compared(
    ["Backend.enqueue", "Backend.enqueue_many"],
    "return",
    "new, distinct ids, one per message; every later call by id finds the model's job",
)
compared(
    ["Backend.dequeue", "Backend.dequeue_many"],
    ["job_id", "tenant_id", "message", "lease_token", "lease_expires_at", "attempt"],
    "the model's next jobs in order; message as enqueued; token above the last; expiry now"
    " + duration; attempt = attempts + 1",
)
compared(
    "Backend.heartbeat",
    ["job_id", "tenant_id", "message", "lease_token", "lease_expires_at", "attempt"],
    "same job, tenant, message, token and attempt; expiry now + duration",
)
compared(["Backend.ack_fail", "Backend.cancel_job", "Backend.retry_job"], "return", "the model")
compared("Backend.reap_expired", "return", "the number of leases the model expires")

_RESULTS = st.sampled_from([None, b"", b"ok", b"\x80\xffbin"])
_ERRORS = st.sampled_from(["boom", "", "no \u2013 ascii"])
_ACTORS = st.sampled_from([None, "ops", "admin"])
#: (progress, progress_message): a message needs a progress.
_PROGRESS = st.sampled_from([(None, None), (0.0, None), (0.5, ""), (1.0, "half way \u00e9")])
#: Clock moves in seconds: sub-second ones, and ones across leases and backoffs.
_STEPS = st.sampled_from([0.25, 0.5, 1, 1.5, 3, 10, 31, 120, 600])
_TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


class LifecycleRules(Operations):
    """The rules of a job's life."""

    @rule(target=JOBS, tenant=tenants, spec=message_specs)
    def enqueue(self, tenant: str, spec: MessageSpec) -> Any:
        return self.do_enqueue(tenant, self.message(spec))

    @rule(target=JOBS, tenant=tenants, spec=message_specs)
    def enqueue_traced(self, tenant: str, spec: MessageSpec) -> Any:
        """An enqueue carrying a trace context, which its `enqueued` event records."""
        return self.do_enqueue(tenant, self.message(spec), trace_context=_TRACE)

    @rule(target=JOBS, tenant=tenants, specs=st.lists(message_specs, min_size=1, max_size=3))
    def enqueue_many(self, tenant: str, specs: list[MessageSpec]) -> Any:
        return self.do_enqueue_many(tenant, [self.message(spec) for spec in specs])

    @rule(target=LEASES, tenant=tenants, queues=queue_lists, seconds=lease_seconds)
    def dequeue(self, tenant: str, queues: tuple[str, ...], seconds: float | None) -> Any:
        return multiple(*self.do_dequeue(tenant, queues, seconds))

    @rule(
        target=LEASES,
        tenant=tenants,
        queues=queue_lists,
        n=st.integers(min_value=2, max_value=4),
        seconds=lease_seconds,
    )
    def dequeue_many(
        self, tenant: str, queues: tuple[str, ...], n: int, seconds: float | None
    ) -> Any:
        return multiple(*self.do_dequeue(tenant, queues, seconds, n))

    @rule(target=LEASES, lease=LEASES, seconds=lease_seconds, progress=_PROGRESS)
    def heartbeat(
        self, lease: LeasedJob, seconds: float | None, progress: tuple[float | None, str | None]
    ) -> Any:
        return self.do_heartbeat(lease, seconds, *progress)

    @rule(lease=LEASES, result=_RESULTS)
    def ack_complete(self, lease: LeasedJob, result: bytes | None) -> None:
        self.do_complete(lease, result)

    @rule(lease=LEASES, retry=st.booleans(), error=_ERRORS)
    def ack_fail(self, lease: LeasedJob, retry: bool, error: str) -> None:
        self.do_fail(lease, retry, error)

    @rule(picks=st.lists(st.tuples(LEASES, st.booleans(), st.booleans()), min_size=1, max_size=4))
    def settle_many(self, picks: list[tuple[LeasedJob, bool, bool]]) -> None:
        """Settle several leases at once, as the first one's tenant."""
        self.do_settle(picks[0][0].tenant_id, picks)

    @rule(lease=LEASES)
    def release(self, lease: LeasedJob) -> None:
        self.do_release(lease)

    @rule(job_id=JOBS, actor=_ACTORS)
    def cancel_job(self, job_id: str, actor: str | None) -> None:
        self.do_cancel(job_id, actor)

    @rule(job_id=JOBS, include_canceled=st.booleans(), actor=_ACTORS)
    def retry_job(self, job_id: str, include_canceled: bool, actor: str | None) -> None:
        self.do_requeue(job_id, include_canceled, actor)

    @rule()
    def reap_expired(self) -> None:
        self.do_reap()

    @rule(seconds=_STEPS)
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule()
    def drain(self) -> None:
        """Run the clock far forward and complete everything: no job may stay behind."""
        self.clock.advance(timedelta(days=1))
        self.do_reap()
        self.adopt_retry_times()
        self.clock.advance(timedelta(days=1))  # past every retry delay the reap set
        for tenant in TENANTS:
            for _ in range(len(self.model.jobs) + 1):
                leases = self.do_dequeue(tenant, QUEUES, None)
                if not leases:
                    break
                self.do_complete(leases[0], b"drained")
        stuck = [job.job_id for job in self.model.jobs.values() if job.status not in TERMINAL]
        assert not stuck, f"jobs not terminal after draining: {stuck}"

    @rule()
    def rebuild_projections(self) -> None:
        self.do_rebuild()

    @precondition(lambda self: hasattr(self.factory, "reopen"))
    @rule()
    def close_and_reopen(self) -> None:
        events = self.run(self.backend.read_events())
        jobs = self.run(self.backend.projected_jobs())
        self.run(self.backend.close())
        self.backend = self.factory.reopen(self.backend)  # type: ignore[attr-defined]
        self.run(self.backend.open())
        assert self.run(self.backend.read_events()) == events, "the log changed on reopen"
        assert self.run(self.backend.projected_jobs()) == jobs, "a job changed on reopen"

    @precondition(lambda self: hasattr(self.factory, "crash_mid_transaction"))
    @rule()
    def crash_mid_transaction(self) -> None:
        # The invariant then checks that no event of the lost transaction appeared.
        self.run(self.factory.crash_mid_transaction(self.backend))  # type: ignore[attr-defined]


compared("Backend.rebuild_projections", "return", "the number of events read_events() returns")
