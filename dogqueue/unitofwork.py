"""Units of work and how a backend runs them: the Transaction a unit sees, what it
declares it reads (`Reads`), and `run_units`, which runs a batch of units in one
transaction, each all or nothing (group commit), consecutive plain enqueues as one pass.

A unit of work raises a QueueError only before its first write, so a refused command
never leaves a partial append behind, even when it shares a transaction with others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import msgspec

from dogqueue.core.errors import QueueError
from dogqueue.core.events import AnyEvent
from dogqueue.core.job import JobInfo
from dogqueue.core.message import JobMessage


class Transaction(Protocol):
    """Storage as one unit of work sees it. Reads see the unit's own writes."""

    def load(self, tenant_id: str, job_id: str) -> JobInfo | None:
        """The job's projected state, or None."""
        ...

    def job_for_key(self, tenant_id: str, idempotency_key: str) -> str | None:
        """The id of the tenant's job holding this idempotency key, or None."""
        ...

    def latest_key(self, tenant_id: str, prefix: str) -> tuple[str, str] | None:
        """The greatest idempotency key of the tenant's jobs that starts with `prefix` (a
        schedule's, in the cron namespace), with its job's id; or None."""
        ...

    def next_ready(self, tenant_id: str, queues: tuple[str, ...], now: datetime) -> JobInfo | None:
        """The tenant's best ENQUEUED job in `queues` due at `now`: the smallest
        `dogqueue.core.order.dequeue_key` (the conformance suite checks every backend)."""
        ...

    def expired_leases(self, tenant_id: str | None, now: datetime) -> list[JobInfo]:
        """LEASED jobs (of one tenant, or all) whose lease ended at or before `now`."""
        ...

    def dependents(self, tenant_id: str, job_id: str) -> list[str]:
        """The ids of the jobs created after this one (`JobMessage.after`), oldest first."""
        ...

    def append(self, event: AnyEvent) -> AnyEvent:
        """Append the event to the log; return it with its assigned `seq`."""
        ...

    def save(self, before: JobInfo | None, after: JobInfo) -> None:
        """Replace the job's projected state `before` with `after`."""
        ...


class BatchTransaction(Transaction, Protocol):
    """A Transaction shared by several units of work, counting its writes."""

    writes: int


TxT = TypeVar("TxT", bound=BatchTransaction)


class RefusedAfterWrite(Exception):
    """A unit of work raised a QueueError after it wrote: its batch must not commit
    (the QueueError is the cause)."""


def run_units(tx: TxT, units: Sequence[Callable[[TxT, datetime], Any]], now: datetime) -> list[Any]:
    """Run units of work in order in one transaction. A unit refused before its first
    write (a QueueError) fails alone: the error is its result; one refused after writing
    raises RefusedAfterWrite, so that the whole batch is rolled back and re-run unit by unit.
    Consecutive plain enqueues (`PlainEnqueue`) run as one pass, as they would one by one."""
    results: list[Any] = []
    index = 0
    while index < len(units):
        unit = units[index]
        index += 1
        if isinstance(unit, PlainEnqueue) and index < len(units):  # a lone one runs alone
            group = [unit]
            while index < len(units):
                other = units[index]
                if not isinstance(other, PlainEnqueue) or other.engine is not unit.engine:
                    break
                group.append(other)
                index += 1
            if len(group) > 1:  # one pass; a QueueError would be a bug: re-run alone
                try:
                    results += unit.engine.create_plain(tx, group, now)
                except QueueError as error:
                    raise RefusedAfterWrite(f"{error!r} in plain enqueues") from error
                continue
        before = tx.writes
        try:
            results.append(unit(tx, now))
        except QueueError as error:
            if tx.writes != before:
                raise RefusedAfterWrite(f"{error!r} after a write") from error
            results.append(error)
    return results


def unwrap_refusal(error: BaseException) -> BaseException:
    """The QueueError behind a RefusedAfterWrite, else the error itself."""
    if isinstance(error, RefusedAfterWrite) and error.__cause__ is not None:
        return error.__cause__
    return error


def deliver(futures: Sequence[asyncio.Future[Any]], results: Sequence[Any]) -> None:
    """Resolve each caller's future with its unit's result, an error being raised in the
    caller; a future already done (its caller gave up) is left alone."""
    for future, result in zip(futures, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class Reads(msgspec.Struct, frozen=True, gc=False):
    """What one unit of work may read, declared before it runs, so that a backend with
    a remote database can fetch a whole batch's reads at once and run the units on an
    in-memory working set. The memory backend (and PostgreSQL) run each unit through a
    view that refuses any read it did not declare (`dogqueue.backend.kit.strictview`)."""

    #: Jobs the unit loads, as (tenant_id, job_id).
    jobs: tuple[tuple[str, str], ...] = ()
    #: Idempotency keys the unit looks up, as (tenant_id, key).
    keys: tuple[tuple[str, str], ...] = ()
    #: Key prefixes whose greatest key the unit looks up, as (tenant_id, prefix).
    key_prefixes: tuple[tuple[str, str], ...] = ()
    #: Jobs the unit creates (each needs an enqueue position).
    new_jobs: int = 0
    #: Ready jobs the unit may lease: (tenant_id, queues, at most how many).
    ready: tuple[tuple[str, tuple[str, ...], int], ...] = ()
    #: Expired leases the unit reclaims: a tenant, or None for every tenant. The
    #: dependents of the jobs it reclaims are declared with them.
    expired: tuple[str | None, ...] = ()
    #: Jobs the unit may end, as (tenant_id, job_id): it reads their dependents, and
    #: theirs in turn (the closure), to settle the jobs waiting for them.
    dependents: tuple[tuple[str, str], ...] = ()
    #: The tenant whose storage the unit writes (a sharded backend routes by it).
    tenant: str | None = None

    def __or__(self, other: Reads) -> Reads:
        """What a unit that does the work of both reads."""
        return Reads(
            jobs=self.jobs + other.jobs,
            keys=self.keys + other.keys,
            key_prefixes=self.key_prefixes + other.key_prefixes,
            new_jobs=self.new_jobs + other.new_jobs,
            ready=self.ready + other.ready,
            expired=self.expired + other.expired,
            dependents=self.dependents + other.dependents,
            tenant=self.tenant or other.tenant,
        )


T = TypeVar("T")
#: What a unit runs: its body, inside one transaction at time `now`.
Work = Callable[[Transaction, datetime], T]


class Unit(NamedTuple, Generic[T]):
    """A unit of work: what it reads, declared before it runs, and `run(tx, now)`, which
    a backend calls inside one transaction and which reads only what `reads` declares.
    All of its events commit, or none."""

    reads: Reads
    run: Work[T]


class PlainCreator(Protocol):
    """What makes the jobs of plain enqueues (the engine)."""

    def create_plain(
        self, tx: Transaction, requests: Sequence[PlainEnqueue], now: datetime
    ) -> list[list[str]]:
        """Create the jobs of each request, in order; each request's ids."""
        ...


def is_plain(message: JobMessage) -> bool:
    """Whether a message's job can be a `PlainEnqueue`'s: no idempotency key, no parents."""
    return message.idempotency_key is None and not message.after and not message.after_earlier


class PlainEnqueue:
    """The work of an enqueue whose jobs have no idempotency key and no parents: once
    its input passed, nothing can refuse it, so `run_units` runs consecutive ones of one
    engine as one pass (`Engine.create_plain`). Its reads are what it does: it reads
    nothing and creates one job per message."""

    __slots__ = ("engine", "messages", "tenant_id", "trace_context")

    def __init__(
        self,
        engine: PlainCreator,
        tenant_id: str,
        messages: Sequence[JobMessage],
        trace_context: dict[str, str] | None,
    ) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self.messages = messages
        self.trace_context = trace_context

    def __call__(self, tx: Transaction, now: datetime) -> list[str]:
        return self.engine.create_plain(tx, [self], now)[0]
