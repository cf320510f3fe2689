"""The stateful property test: a backend driven by random operations and clock moves,
compared after every step with the reference model (`dogqueue.testing.model`).

Only the public `Backend` contract is used, except through a factory's optional hooks
(see `dogqueue.testing.factories`). Each run owns one event loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import msgspec
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from dogqueue.backend.contract import Backend
from dogqueue.clock import FakeClock
from dogqueue.core.config import QueueConfig
from dogqueue.core.cron import ScheduleSpec
from dogqueue.core.errors import (
    BackendClosed,
    InvalidInput,
    JobAlreadyExists,
    JobCanceled,
    JobNotFound,
    LeaseLost,
    QueueError,
)
from dogqueue.core.events import AnyEvent, Enqueued, Expired, Failed, ParentFinished
from dogqueue.core.job import Completion, Failure, JobInfo, LeasedJob, Settlement
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.projection import fold, rebuild
from dogqueue.core.status import JobPriority
from dogqueue.testing.factories import BackendFactory
from dogqueue.testing.model import (
    CANCELED,
    ENQUEUED,
    LEASED,
    TERMINAL,
    ModelAck,
    QueueModel,
    Refusal,
    due_ticks,
    record_tick,
    schedule_key,
)

T = TypeVar("T")

TENANTS = ("acme", "globex")
QUEUES = ("default", "mail")
QUEUE_CHOICES = (("default",), ("mail",), ("default", "mail"))
KEYS = ("k1", "k2", "k3")
#: A well-formed job id no backend will ever issue.
UNKNOWN_JOB_ID = "00000000-0000-7000-8000-000000000000"

#: Short leases and backoffs, so clock moves cross them often.
CONFIG = QueueConfig(
    default_lease_duration=timedelta(seconds=30),
    base_retry_backoff=timedelta(seconds=1),
    max_retry_backoff=timedelta(seconds=8),
)

_REFUSALS: dict[str, type[QueueError]] = {
    "not_found": JobNotFound,
    "canceled": JobCanceled,
    "lease_lost": LeaseLost,
    "exists": JobAlreadyExists,
    "invalid": InvalidInput,
    "transition": QueueError,
    "closed": BackendClosed,
}
LEASE_OPERATIONS = ("heartbeat", "ack_complete", "ack_fail", "release")
#: A lease on a job no backend will ever issue, for calls that must fail before any lookup.
UNKNOWN_LEASE = LeasedJob(
    job_id=UNKNOWN_JOB_ID,
    tenant_id=TENANTS[0],
    message=JobMessage(job_type="props", payload_bytes=b"{}"),
    lease_token=1,
    lease_expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    attempt=1,
)

tenants = st.sampled_from(TENANTS)
queue_lists = st.sampled_from(QUEUE_CHOICES)
#: Seconds from now to run_at (None: now).
run_in = st.sampled_from([None, -10, 0, 5, 60])
priorities = st.sampled_from([int(p) for p in JobPriority])
idempotency_keys = st.none() | st.sampled_from(KEYS)
retry_limits = st.sampled_from([0, 1, 2])
#: Lease durations in seconds (None: the config's default).
lease_seconds = st.sampled_from([None, 2, 10, 60])
#: (queue, priority, run_in, idempotency key, max_retries) of one message.
message_specs = st.tuples(
    st.sampled_from(QUEUES), priorities, run_in, idempotency_keys, retry_limits
)


Call = Callable[[Backend], Coroutine[Any, Any, Any]]
_VALID = JobMessage(job_type="props", payload_bytes=b"{}")

# -- schedules (cron) ----------------------------------------------------------------------
#: (name, cron, seconds between ticks, catch_up): UTC schedules whose ticks the model
#: finds by arithmetic (every one divides a day), so it shares nothing with the engine.
SCHEDULES = (
    ("minutely", "* * * * *", 60, 1),
    ("quarterly", "*/15 * * * *", 900, 3),
    ("hourly", "0 * * * *", 3600, 2),
)
schedules = st.sampled_from(SCHEDULES)
_T = datetime(2030, 1, 1, tzinfo=UTC)


def _schedule_spec(schedule: tuple[str, str, int, int], queue: str = "default") -> ScheduleSpec:
    name, cron, _, catch_up = schedule
    message = JobMessage(job_type="props", payload_bytes=b"{}", queue=queue, max_retries=0)
    return ScheduleSpec(name=name, cron=cron, timezone="UTC", catch_up=catch_up, message=message)


_replace = msgspec.structs.replace
_CTX = QueueCtx(TENANTS[0])
#: A malformed call of each method that takes input (README, promise 8).
_BAD_CALLS: dict[str, Call] = {
    "enqueue": lambda b: b.enqueue(QueueCtx(""), _VALID),
    "enqueue_many": lambda b: b.enqueue_many(
        _CTX, [_VALID, msgspec.structs.replace(_VALID, queue="")]
    ),
    "dequeue": lambda b: b.dequeue(_CTX, []),
    "dequeue_many": lambda b: b.dequeue_many(_CTX, list(QUEUES), 0),
    "heartbeat": lambda b: b.heartbeat(_CTX, "not a lease"),  # type: ignore[arg-type]
    "ack_complete": lambda b: b.ack_complete(_CTX, "not a lease"),  # type: ignore[arg-type]
    "ack_fail": lambda b: b.ack_fail(_CTX, "not a lease", "boom"),  # type: ignore[arg-type]
    "release": lambda b: b.release(_CTX, "not a lease"),  # type: ignore[arg-type]
    "settle_many": lambda b: b.settle_many(
        _CTX,
        [Completion(lease=UNKNOWN_LEASE), "not a settlement"],  # type: ignore[list-item]
    ),
    "cancel_job": lambda b: b.cancel_job(_CTX, 42),  # type: ignore[arg-type]
    "cancel_workflow": lambda b: b.cancel_workflow(_CTX, 42),  # type: ignore[arg-type]
    "retry_job": lambda b: b.retry_job(_CTX, 42),  # type: ignore[arg-type]
    "get_status": lambda b: b.get_status(_CTX, 42),  # type: ignore[arg-type]
    "get_job": lambda b: b.get_job(_CTX, 42),  # type: ignore[arg-type]
    "history": lambda b: b.history(_CTX, 42),  # type: ignore[arg-type]
    "ready_tenants": lambda b: b.ready_tenants("default"),
    "next_run_at": lambda b: b.next_run_at([]),
    "enqueue_ticks": lambda b: b.enqueue_ticks(
        _CTX, _schedule_spec(("a@b", "* * * * *", 60, 1)), _T
    ),
    "latest_tick": lambda b: b.latest_tick(_CTX, ""),
}
#: A well-formed call of each method, for a closed backend to refuse.
_CLOSED_CALLS: dict[str, Call] = {
    "open": lambda b: b.open(),
    "enqueue": lambda b: b.enqueue(_CTX, _VALID),
    "enqueue_many": lambda b: b.enqueue_many(_CTX, [_VALID]),
    "dequeue": lambda b: b.dequeue(_CTX, list(QUEUES)),
    "dequeue_many": lambda b: b.dequeue_many(_CTX, list(QUEUES), 2),
    "heartbeat": lambda b: b.heartbeat(_CTX, UNKNOWN_LEASE),
    "ack_complete": lambda b: b.ack_complete(_CTX, UNKNOWN_LEASE),
    "ack_fail": lambda b: b.ack_fail(_CTX, UNKNOWN_LEASE, "boom"),
    "release": lambda b: b.release(_CTX, UNKNOWN_LEASE),
    "settle_many": lambda b: b.settle_many(_CTX, [Completion(lease=UNKNOWN_LEASE)]),
    "cancel_job": lambda b: b.cancel_job(_CTX, UNKNOWN_JOB_ID),
    "cancel_workflow": lambda b: b.cancel_workflow(_CTX, UNKNOWN_JOB_ID),
    "retry_job": lambda b: b.retry_job(_CTX, UNKNOWN_JOB_ID),
    "get_status": lambda b: b.get_status(_CTX, UNKNOWN_JOB_ID),
    "get_job": lambda b: b.get_job(_CTX, UNKNOWN_JOB_ID),
    "history": lambda b: b.history(_CTX, UNKNOWN_JOB_ID),
    "reap_expired": lambda b: b.reap_expired(),
    "ready_tenants": lambda b: b.ready_tenants(list(QUEUES)),
    "next_run_at": lambda b: b.next_run_at(list(QUEUES)),
    "read_events": lambda b: b.read_events(),
    "projected_jobs": lambda b: b.projected_jobs(),
    "rebuild_projections": lambda b: b.rebuild_projections(),
    "enqueue_ticks": lambda b: b.enqueue_ticks(_CTX, _schedule_spec(SCHEDULES[0]), _T),
    "latest_tick": lambda b: b.latest_tick(_CTX, SCHEDULES[0][0]),
}


def _lease_calls(ctx: QueueCtx, lease: LeasedJob) -> list[Call]:
    """Every lease method called with `ctx` and `lease`."""
    return [
        lambda b: b.heartbeat(ctx, lease),
        lambda b: b.ack_complete(ctx, lease, b"stolen"),
        lambda b: b.ack_fail(ctx, lease, "stolen", retry=False),
        lambda b: b.release(ctx, lease),
    ]


class BackendStateMachine(RuleBasedStateMachine):
    """Subclass with a `factory` (see `backend_state_machine`) to check a backend."""

    factory: ClassVar[BackendFactory]

    jobs = Bundle("jobs")
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        # One loop driven step by step: asyncio.Runner.run would install and restore a
        # SIGINT handler on every call, which costs more than most backend calls.
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.model = QueueModel(
            base_backoff=CONFIG.base_retry_backoff, max_backoff=CONFIG.max_retry_backoff
        )
        self.owner: dict[str, str] = {}
        self.seen_seq = 0
        self.backend: Backend = self.factory(clock=self.clock, config=CONFIG)
        self.run(self.backend.open())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run one backend call on this state machine's event loop."""
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.backend.close())
            discard = getattr(self.factory, "discard", None)
            if discard is not None:
                discard(self.backend)
        finally:
            _close_loop(self.loop)

    # -- helpers ---------------------------------------------------------------------

    def expect_refusal(self, coroutine: Coroutine[Any, Any, Any], refusal: Refusal) -> None:
        """The call must raise the error `refusal` names (checks on the appended events
        happen in the invariant)."""
        expected = _REFUSALS[refusal.kind]
        try:
            outcome = self.run(coroutine)
        except QueueError as error:
            assert isinstance(error, expected), (
                f"expected {expected.__name__} ({refusal.kind}), got {error!r}"
            )
            if refusal.kind == "transition":
                assert not isinstance(error, JobNotFound), f"unexpected {error!r}"
            if refusal.kind == "exists":
                assert isinstance(error, JobAlreadyExists)
                assert error.job_id == refusal.job_id, (
                    f"JobAlreadyExists names {error.job_id!r}, the key belongs to"
                    f" {refusal.job_id!r}"
                )
            return
        raise AssertionError(
            f"call succeeded with {outcome!r}; expected {expected.__name__} ({refusal.kind})"
        )

    def other_tenant(self, tenant: str) -> str:
        return TENANTS[1] if tenant == TENANTS[0] else TENANTS[0]

    def message(self, spec: tuple[str, int, int | None, str | None, int]) -> JobMessage:
        queue, priority, seconds, key, max_retries = spec
        run_at = None if seconds is None else self.clock() + timedelta(seconds=seconds)
        return JobMessage(
            job_type="props",
            payload_bytes=b"{}",
            queue=queue,
            priority=JobPriority(priority),
            max_retries=max_retries,
            run_at=run_at,
            idempotency_key=key,
        )

    def record_enqueued(
        self, tenant: str, job_id: str, message: JobMessage, batch: Sequence[str] = ()
    ) -> None:
        """Tell the model of a job the backend accepted; `batch` holds the ids of the
        call's jobs, for `after_earlier`."""
        self.owner[job_id] = tenant
        run_at = message.run_at if message.run_at is not None else self.clock()
        self.model.enqueue(
            tenant,
            job_id,
            queue=message.queue,
            priority=int(message.priority),
            max_retries=message.max_retries,
            key=message.idempotency_key,
            run_at=run_at,
        )
        parents = message.after + tuple(batch[i] for i in message.after_earlier)
        if parents:
            job = self.model.job(tenant, job_id)
            assert job is not None
            self.model.wait_for(job, parents, message.on_parent_failure == "run")

    def adopt_retry_times(self) -> None:
        """Read the jittered run_at the backend chose for each retried job, check it lies
        in the documented window (invariant 11), and adopt it."""
        for job in self.model.jobs.values():
            if job.run_at_window is None:
                continue
            info = self.run(self.backend.get_job(QueueCtx(job.tenant), job.job_id))
            earliest, latest = job.run_at_window
            assert earliest <= info.run_at <= latest, (
                f"retry of {job.job_id} at {info.run_at}, outside [{earliest}, {latest}]"
            )
            assert latest - self.clock() <= CONFIG.max_retry_backoff
            job.run_at = info.run_at
            job.run_at_window = None

    def do_dequeue(
        self, tenant: str, queues: Sequence[str], seconds: int | None, n: int | None = None
    ) -> list[LeasedJob]:
        """`dequeue` (n None) or `dequeue_many(n)`: the leases must be exactly the
        model's next jobs, in order."""
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
            assert lease.lease_token > job.token, "a lease token was reused"
            assert lease.attempt == job.attempts + 1
            assert lease.lease_expires_at == now + (duration or CONFIG.default_lease_duration)
            self.model.lease(job, lease.lease_token, lease.lease_expires_at)
        return leases

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

    def do_settle(self, tenant: str, picks: Sequence[tuple[LeasedJob, bool, bool]]) -> None:
        """`settle_many` as `tenant` of leases, each (lease, failed?, retry?): each one is
        settled or refused exactly as the model says, on its own."""
        now = self.clock()
        settlements: list[Settlement] = []
        acks: list[ModelAck] = []
        for lease, failed, retry in picks:
            if failed:
                settlements.append(Failure(lease=lease, error="boom", retry=retry))
                acks.append(ModelAck(lease.job_id, lease.lease_token, error="boom", retry=retry))
            else:
                settlements.append(Completion(lease=lease, result=b"ok"))
                acks.append(ModelAck(lease.job_id, lease.lease_token, result=b"ok"))
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
                refused = _REFUSALS[wanted.kind]
                assert isinstance(got, refused), (
                    f"settle_many[{index}] gave {got!r}; expected {refused.__name__}"
                    f" ({wanted.kind})"
                )
            else:
                assert got == wanted, f"settle_many[{index}] gave {got!r}, expected {wanted}"

    def do_settle_probe(self, tenant: str, queue: str, older: int) -> list[LeasedJob]:
        """One batch holding every kind of acknowledgement: valid ones around a canceled
        job, a stale token, another tenant's lease and an unknown job. Each refusal must
        stay its own; return the leases taken."""
        self.enqueue_due_now(tenant, queue, JobPriority.HIGH, 4)
        first, canceled, failing, last = self.do_dequeue(tenant, (queue,), None, 4)[:4]
        other = self.other_tenant(tenant)
        self.enqueue_due_now(other, queue, JobPriority.HIGH, 1)
        foreign = self.do_dequeue(other, (queue,), None)[0]
        self.do_cancel(canceled.job_id)
        stale = _replace(failing, lease_token=max(failing.lease_token - older, 0))
        unknown = _replace(last, job_id=UNKNOWN_JOB_ID)
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
        return [foreign]

    def do_reap(self) -> None:
        expected = self.model.expire(None, self.clock())
        count = self.run(self.backend.reap_expired())
        assert count == len(expected), f"reaped {count} leases, expected {len(expected)}"

    # -- rules -----------------------------------------------------------------------

    @rule(target=jobs, tenant=tenants, spec=message_specs)
    def enqueue(self, tenant: str, spec: tuple[str, int, int | None, str | None, int]) -> Any:
        return self.do_enqueue(tenant, self.message(spec))

    def do_enqueue(self, tenant: str, message: JobMessage) -> Any:
        """`enqueue` one message, refused as the model says (a taken key, a parent
        that is not the tenant's)."""
        refusal = self.model.check_enqueue(tenant, [message.idempotency_key])
        refusal = refusal or self.model.check_parents(tenant, list(message.after))
        call = self.backend.enqueue(QueueCtx(tenant), message)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return multiple()
        job_id = self.run(call)
        self.record_enqueued(tenant, job_id, message)
        return job_id

    @rule(
        target=jobs,
        tenant=tenants,
        specs=st.lists(message_specs, min_size=1, max_size=3),
    )
    def enqueue_many(
        self, tenant: str, specs: list[tuple[str, int, int | None, str | None, int]]
    ) -> Any:
        return self.do_enqueue_many(tenant, [self.message(spec) for spec in specs])

    def do_enqueue_many(self, tenant: str, messages: list[JobMessage]) -> Any:
        """`enqueue_many`, all or none, refused as the model says."""
        refusal = self.model.check_enqueue(tenant, [m.idempotency_key for m in messages])
        call = self.backend.enqueue_many(QueueCtx(tenant), messages)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return multiple()
        job_ids = self.run(call)
        assert len(job_ids) == len(messages)
        assert len(set(job_ids)) == len(job_ids), "enqueue_many issued one id twice"
        for job_id, message in zip(job_ids, messages, strict=True):
            self.record_enqueued(tenant, job_id, message, job_ids)
        return multiple(*job_ids)

    @rule(target=leases, tenant=tenants, queues=queue_lists, seconds=lease_seconds)
    def dequeue(self, tenant: str, queues: tuple[str, ...], seconds: int | None) -> Any:
        return multiple(*self.do_dequeue(tenant, queues, seconds))

    @rule(
        target=leases,
        tenant=tenants,
        queues=queue_lists,
        n=st.integers(min_value=2, max_value=4),
        seconds=lease_seconds,
    )
    def dequeue_many(
        self, tenant: str, queues: tuple[str, ...], n: int, seconds: int | None
    ) -> Any:
        return multiple(*self.do_dequeue(tenant, queues, seconds, n))

    @rule(target=leases, lease=leases, seconds=lease_seconds)
    def heartbeat(self, lease: LeasedJob, seconds: int | None) -> Any:
        return self.do_heartbeat(lease, seconds)

    def do_heartbeat(self, lease: LeasedJob, seconds: int | None) -> Any:
        now = self.clock()
        refusal = self.model.check_lease(lease.tenant_id, lease.job_id, lease.lease_token, now)
        duration = None if seconds is None else timedelta(seconds=seconds)
        call = self.backend.heartbeat(QueueCtx(lease.tenant_id), lease, lease_duration=duration)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return multiple()
        extended = self.run(call)
        assert extended.lease_token == lease.lease_token, "heartbeat changed the token"
        assert extended.attempt == lease.attempt
        expires = now + (duration or CONFIG.default_lease_duration)
        assert extended.lease_expires_at == expires
        job = self.model.job(lease.tenant_id, lease.job_id)
        assert job is not None
        self.model.heartbeat(job, expires)
        return extended

    @rule(lease=leases, result=st.none() | st.sampled_from([b"", b"ok"]))
    def ack_complete(self, lease: LeasedJob, result: bytes | None) -> None:
        self.do_complete(lease, result)

    @rule(lease=leases, retry=st.booleans())
    def ack_fail(self, lease: LeasedJob, retry: bool) -> None:
        self.do_fail(lease, retry)

    def do_fail(self, lease: LeasedJob, retry: bool) -> None:
        now = self.clock()
        refusal = self.model.check_lease(lease.tenant_id, lease.job_id, lease.lease_token, now)
        call = self.backend.ack_fail(QueueCtx(lease.tenant_id), lease, "boom", retry=retry)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return
        status = self.run(call)
        job = self.model.job(lease.tenant_id, lease.job_id)
        assert job is not None
        expected = self.model.fail(job, "boom", retry, now)
        assert status == expected, f"ack_fail returned {status}, expected {expected}"

    @rule(picks=st.lists(st.tuples(leases, st.booleans(), st.booleans()), min_size=1, max_size=4))
    def settle_many(self, picks: list[tuple[LeasedJob, bool, bool]]) -> None:
        """Settle several leases at once, as the first one's tenant."""
        self.do_settle(picks[0][0].tenant_id, picks)

    @rule(lease=leases)
    def release(self, lease: LeasedJob) -> None:
        self.do_release(lease)

    def do_release(self, lease: LeasedJob) -> None:
        now = self.clock()
        refusal = self.model.check_lease(lease.tenant_id, lease.job_id, lease.lease_token, now)
        call = self.backend.release(QueueCtx(lease.tenant_id), lease)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return
        self.run(call)
        job = self.model.job(lease.tenant_id, lease.job_id)
        assert job is not None
        self.model.release(job)

    @rule(job_id=jobs)
    def cancel_job(self, job_id: str) -> None:
        self.do_cancel(job_id)

    def do_cancel(self, job_id: str) -> None:
        tenant = self.owner[job_id]
        job = self.model.job(tenant, job_id)
        assert job is not None
        status = self.run(self.backend.cancel_job(QueueCtx(tenant), job_id))
        expected = self.model.cancel(job)
        assert status == expected, f"cancel_job returned {status}, expected {expected}"

    @rule(job_id=jobs)
    def retry_job(self, job_id: str) -> None:
        # Without include_canceled: the operator override that leaves CANCELED is not
        # part of the promises checked here.
        tenant = self.owner[job_id]
        job = self.model.job(tenant, job_id)
        assert job is not None
        refusal = self.model.check_requeue(job)
        call = self.backend.retry_job(QueueCtx(tenant), job_id)
        if refusal is not None:
            self.expect_refusal(call, refusal)
            return
        status = self.run(call)
        self.model.requeue(job, self.clock())
        assert status == ENQUEUED, f"retry_job returned {status}"

    @rule()
    def reap_expired(self) -> None:
        self.do_reap()

    @rule(seconds=st.sampled_from([1, 3, 10, 31, 120, 600]))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(job_id=jobs)
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
            message=_VALID,
            lease_token=max(job.token, 1),
            lease_expires_at=job.lease_expires_at or self.clock(),
            attempt=max(job.attempts, 1),
        )
        other = QueueCtx(self.other_tenant(owner))
        unknown = _replace(lease, job_id=UNKNOWN_JOB_ID)
        calls: list[Call] = [
            lambda b: b.get_job(other, job_id),
            lambda b: b.get_status(other, job_id),
            lambda b: b.history(other, job_id),
            lambda b: b.cancel_job(other, job_id),
            lambda b: b.retry_job(other, job_id),
            lambda b: b.cancel_workflow(other, job_id),
        ]
        calls += _lease_calls(other, lease) + _lease_calls(QueueCtx(owner), unknown)
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
            stale = _replace(lease, lease_token=max(lease.lease_token - older, 0))
            for operation in LEASE_OPERATIONS:
                self.use_lease(stale, operation)
            self.do_cancel(lease.job_id)
            for operation in LEASE_OPERATIONS:
                self.use_lease(lease, operation)

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

    @initialize(
        target=leases,
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
        # An idempotency key taken twice, and a retry of a job that has not failed.
        keyed = self.message((queue, priority, None, KEYS[0], 0))
        self.record_enqueued(tenant, self.run(self.backend.enqueue(QueueCtx(tenant), keyed)), keyed)
        taken = self.model.check_enqueue(tenant, [KEYS[0]])
        assert taken is not None
        self.expect_refusal(self.backend.enqueue(QueueCtx(tenant), keyed), taken)
        self.expect_refusal(self.backend.enqueue_many(QueueCtx(tenant), [keyed]), taken)
        self.expect_refusal(
            self.backend.retry_job(QueueCtx(tenant), leases[0].job_id), Refusal("transition")
        )
        self.refuse_bad_input_and_closed_backends()
        return multiple(*leases)

    def enqueue_due_now(self, tenant: str, queue: str, priority: int, n: int) -> list[str]:
        """Enqueue `n` jobs of one priority, due now, in one batch."""
        messages = [self.message((queue, priority, None, None, 0)) for _ in range(n)]
        job_ids = self.run(self.backend.enqueue_many(QueueCtx(tenant), messages))
        for job_id, message in zip(job_ids, messages, strict=True):
            self.record_enqueued(tenant, job_id, message)
        return job_ids

    def refuse_bad_input_and_closed_backends(self) -> None:
        """Every method refuses malformed input with InvalidInput, appending nothing;
        a closed backend (a fresh one from the factory) refuses every call with
        BackendClosed."""
        for call in _BAD_CALLS.values():
            self.expect_refusal(call(self.backend), Refusal("invalid"))
        closed = self.factory(clock=self.clock, config=CONFIG)
        try:
            self.run(closed.open())
            self.run(closed.close())
            for call in _CLOSED_CALLS.values():
                self.expect_refusal(call(closed), Refusal("closed"))
        finally:
            discard = getattr(self.factory, "discard", None)
            if discard is not None:
                discard(closed)

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
        before = self.run(self.backend.projected_jobs())
        folded = self.run(self.backend.rebuild_projections())
        assert folded == len(self.run(self.backend.read_events()))
        assert self.run(self.backend.projected_jobs()) == before, "rebuild changed a job"

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

    # -- the invariants, checked after every step --------------------------------------

    @invariant()
    def backend_matches_model(self) -> None:
        self.check_new_events()
        self.adopt_retry_times()
        projected = self.run(self.backend.projected_jobs())
        model_keys = set(self.model.jobs)
        assert set(projected) == model_keys, (
            f"jobs lost: {model_keys - set(projected)}; jobs unknown to the model:"
            f" {set(projected) - model_keys}"
        )
        for key, job in self.model.jobs.items():
            info = projected[key]
            seen = (info.status, info.attempts, info.result, info.last_error)
            wanted = (job.status, job.attempts, job.result, job.last_error)
            assert seen == wanted, (
                f"job {job.job_id}: (status, attempts, result, error) {seen} != model {wanted}"
            )
            if job.status == ENQUEUED:
                assert info.run_at == job.run_at, f"job {job.job_id} run_at {info.run_at}"
            if job.status == LEASED:
                assert info.lease_token == job.token, f"job {job.job_id} token"
                assert info.lease_expires_at == job.lease_expires_at, f"job {job.job_id} lease"
        log = self.run(self.backend.read_events())
        assert rebuild(log) == projected, "rebuilding from the log differs from the projection"
        self.check_status_counts(projected)
        self.check_workflows(log, projected)
        self.check_each_tick_has_one_job(projected)
        for tenant, job_id in self.model.take_touched():
            self.check_history(tenant, job_id, projected[(tenant, job_id)])

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
        assert not seqs or seqs[0] > self.seen_seq
        seen = sorted((e.tenant_id, e.job_id, e.type) for e in events)
        wanted = sorted(self.model.take_expected_events())
        assert seen == wanted, f"appended events {seen} != expected {wanted}"
        if events:
            self.seen_seq = events[-1].seq

    # -- workflows: jobs that run after other jobs --------------------------------------

    @rule(
        target=jobs,
        tenant=tenants,
        spec=message_specs,
        parents=st.lists(jobs, max_size=3, unique=True),
        run_anyway=st.booleans(),
    )
    def enqueue_after(
        self,
        tenant: str,
        spec: tuple[str, int, int | None, str | None, int],
        parents: list[str],
        run_anyway: bool,
    ) -> Any:
        """A job after earlier jobs (some perhaps another tenant's: refused)."""
        message = _replace(
            self.message(spec),
            after=tuple(parents),
            on_parent_failure="run" if run_anyway else "cancel",
        )
        return self.do_enqueue(tenant, message)

    @rule(
        target=jobs,
        tenant=tenants,
        specs=st.lists(message_specs, min_size=1, max_size=3),
        chained=st.booleans(),
        run_anyway=st.booleans(),
    )
    def enqueue_chord(
        self,
        tenant: str,
        specs: list[tuple[str, int, int | None, str | None, int]],
        chained: bool,
        run_anyway: bool,
    ) -> Any:
        """A group and a job after all of it, or a chain, in one call."""
        messages = [self.message(spec) for spec in specs]
        if chained:
            messages = [
                _replace(m, after_earlier=(i - 1,) if i else ()) for i, m in enumerate(messages)
            ]
        policy = "run" if run_anyway else "cancel"
        messages.append(
            _replace(
                _VALID,
                queue=QUEUES[0],
                max_retries=0,
                after_earlier=tuple(range(len(messages))),
                on_parent_failure=policy,
            )
        )
        return self.do_enqueue_many(tenant, messages)

    @rule(job_id=jobs)
    def cancel_workflow(self, job_id: str) -> None:
        tenant = self.owner[job_id]
        job = self.model.job(tenant, job_id)
        assert job is not None
        canceled = self.run(self.backend.cancel_workflow(QueueCtx(tenant), job_id))
        expected = self.model.cancel_workflow(job)
        assert sorted(canceled) == sorted(expected), (
            f"cancel_workflow canceled {canceled}, expected {expected}"
        )

    @initialize(target=jobs, tenant=tenants, queue=st.sampled_from(QUEUES))
    def probe_workflows(self, tenant: str, queue: str) -> Any:
        """Each example also starts with a small workflow run to its end: a chord whose
        fan-in must wait for both parts and is canceled when one fails, a dependent
        that opted in and runs anyway, a job after another tenant's job (refused), and
        a chain canceled whole."""
        ctx = QueueCtx(tenant)
        foreign = self.run(self.backend.enqueue(QueueCtx(self.other_tenant(tenant)), _VALID))
        self.record_enqueued(self.other_tenant(tenant), foreign, _VALID)
        part = self.message((queue, int(JobPriority.HIGH), None, None, 0))
        chord = [part, part, _replace(part, after_earlier=(0, 1))]
        ids = self.run(self.backend.enqueue_many(ctx, chord))
        for job_id, message in zip(ids, chord, strict=True):
            self.record_enqueued(tenant, job_id, message, ids)
        anyway = _replace(part, after=(ids[0], ids[1]), on_parent_failure="run")
        watched = [*ids, self.run(self.backend.enqueue(ctx, anyway))]
        self.record_enqueued(tenant, watched[-1], anyway)
        self.expect_refusal(
            self.backend.enqueue(ctx, _replace(part, after=(foreign, ids[0]))),
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
        steps = [part, _replace(part, after_earlier=(0,)), _replace(part, after_earlier=(1,))]
        chain = self.run(self.backend.enqueue_many(ctx, steps))
        for job_id, message in zip(chain, steps, strict=True):
            self.record_enqueued(tenant, job_id, message, chain)
        self.cancel_workflow(chain[0])
        return multiple(*ids, *chain)

    def check_workflows(self, log: list[AnyEvent], projected: dict[Any, JobInfo]) -> None:
        """No job is leased before all its parents completed, and a dependent of a
        failed or canceled parent never runs unless it opted in (from the log alone);
        the replayed workflow state (the parents each job still waits for) is the
        model's."""
        completed: dict[tuple[str, str], int] = {}
        ended: dict[tuple[str, str], int] = {}
        for event in log:
            key = (event.tenant_id, event.job_id)
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
            if event.type == "leased":
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

    def check_history(self, tenant: str, job_id: str, projected: JobInfo) -> None:
        ctx = QueueCtx(tenant)
        history: list[AnyEvent] = self.run(self.backend.history(ctx, job_id))
        types = [event.type for event in history]
        job = self.model.job(tenant, job_id)
        assert job is not None
        assert types == job.events, f"history of {job_id}: {types} != model {job.events}"
        if CANCELED in types:  # cancel wins
            after = types[types.index(CANCELED) + 1 :]
            assert not {"completed", "failed", "leased"} & set(after), f"{job_id}: {types}"
        if job.status == "completed":
            assert types.count("completed") == 1, f"{job_id}: {types}"
        # The tenant's view (history, get_job) is in tenant positions; the projection is
        # in log positions: they may differ only in `enqueue_seq`.
        mine = self.run(self.backend.get_job(ctx, job_id))
        assert fold(history) == mine, f"folding the history of {job_id} != get_job"
        assert mine == msgspec.structs.replace(projected, enqueue_seq=mine.enqueue_seq)

    # -- schedules (cron): ticks enqueued exactly once -----------------------------------

    @rule(target=jobs, tenant=tenants, schedule=schedules, queue=st.sampled_from(QUEUES))
    def enqueue_ticks(self, tenant: str, schedule: tuple[str, str, int, int], queue: str) -> Any:
        """The schedule's due ticks: exactly those the model expects, each one job."""
        name, _, seconds, catch_up = schedule
        now = self.clock()
        spec = _schedule_spec(schedule, queue)
        due = due_ticks(self.model, tenant, name, timedelta(seconds=seconds), catch_up, now)
        job_ids = self.run(self.backend.enqueue_ticks(QueueCtx(tenant), spec, now))
        assert isinstance(job_ids, list), f"enqueue_ticks returned {job_ids!r}"
        assert len(job_ids) == len(due), (
            f"enqueue_ticks of {name} at {now} enqueued {len(job_ids)} jobs; the due ticks"
            f" are {due}"
        )
        for job_id, tick in zip(job_ids, due, strict=True):
            keyed = _replace(spec.message, idempotency_key=schedule_key(name, tick), run_at=tick)
            self.record_enqueued(tenant, job_id, keyed)
            record_tick(self.model, tenant, name, tick, job_id)
        return multiple(*job_ids)

    @initialize(target=jobs, tenant=tenants, schedule=schedules)
    def probe_ticks(self, tenant: str, schedule: tuple[str, str, int, int]) -> Any:
        """Each example also starts by enqueueing a schedule's tick and asking again at
        the same moment (nothing more may be enqueued), so a backend that enqueues a
        tick twice is caught in the first example."""
        first = self.enqueue_ticks(tenant, schedule, QUEUES[0])
        again = self.enqueue_ticks(tenant, schedule, QUEUES[0])
        return multiple(*first.values, *again.values)

    @rule(tenant=tenants, schedule=schedules)
    def latest_tick(self, tenant: str, schedule: tuple[str, str, int, int]) -> None:
        name = schedule[0]
        ticks = self.model.ticks.get((tenant, name))
        expected = None if not ticks else (max(ticks), ticks[max(ticks)])
        got = self.run(self.backend.latest_tick(QueueCtx(tenant), name))
        assert got == expected, f"latest_tick of {name}: {got}, expected {expected}"

    def check_each_tick_has_one_job(self, projected: dict[tuple[str, str], JobInfo]) -> None:
        """Invariant: each (schedule, tick) has exactly one job, and only the model's
        ticks have (checked on the projection `backend_matches_model` reads)."""
        held = Counter(
            (tenant, job.message.idempotency_key)
            for (tenant, _), job in projected.items()
            if (job.message.idempotency_key or "").startswith("dogqueue.cron:")
        )
        repeated = {key: count for key, count in held.items() if count > 1}
        assert not repeated, f"ticks with more than one job: {repeated}"
        expected = {
            (tenant, schedule_key(name, tick))
            for (tenant, name), ticks in self.model.ticks.items()
            for tick in ticks
        }
        assert set(held) == expected, f"tick jobs {sorted(held)} != model {sorted(expected)}"


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on `loop`, finish its generators and executor, close it."""
    try:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def backend_state_machine(
    factory: BackendFactory, name: str = "Backend"
) -> type[BackendStateMachine]:
    """A state machine class that checks the backends `factory` makes; run it with
    `hypothesis.stateful.run_state_machine_as_test` or through its `.TestCase`."""
    attributes: dict[str, object] = {"factory": staticmethod(factory)}
    return type(f"{name}StateMachine", (BackendStateMachine,), attributes)


__all__ = ["CONFIG", "BackendStateMachine", "backend_state_machine"]
