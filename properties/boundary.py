"""Broken backends generated at the contract boundary, by wrapping a correct backend
(`broken.Forwarding`) and introspecting the `Backend` and `LogReader` protocols, so a new
contract method, parameter or returned field gets mutants without anyone writing them:

- ignore a parameter: a parameter with a default (or a field of a struct parameter with
  a default or a stand-in) is replaced by that default before the correct call;
- perturb a returned field: drop it (None), swap it between the first two results of one
  call, move it by one (integers, positions, limits, times), or give another tenant's
  name, in the value the correct call returned;
- skip a side effect: `wait_for_change` never woken; an idempotency key released when its
  job ends;
- break atomicity: a batch refused for one kind of refusal keeps the items before the
  refused one.

A generated mutant that no backend can tell from a correct one is listed in
`EQUIVALENT` with the reason; the CI profile must catch every other one
(properties/test_boundary_mutants.py; table: python -m properties.catch_table).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import typing
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from dogqueue.backend.contract import Backend
from dogqueue.core.errors import InvalidInput, JobAlreadyExists, QueueError
from dogqueue.core.job import Completion, Failure, LeasedJob
from dogqueue.core.message import JobMessage, QueueCtx
from dogqueue.core.status import JobStatus
from dogqueue.log.reader import LogReader
from properties.broken import Forwarding, _camel
from properties.coverage import CONTRACT, _fields_of, _struct_fields, _unwrap

Method = Callable[..., Awaitable[Any]]
#: Values that stand for a required struct field a backend might ignore.
STAND_INS: dict[str, object] = {
    "job_type": "props",
    "payload_bytes": b"{}",
    "timezone": "UTC",
    "catch_up": 1,
    "error": "failed",
}
_TENANT_SWAP = {"acme": "globex", "globex": "acme"}
_STATUSES = list(JobStatus)


# -- forwarding a LogReader ----------------------------------------------------------------


class ForwardingReader:
    """A LogReader forwarding every call to `inner`; mutants override one method."""

    def __init__(self, inner: LogReader) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _reader_mutant(name: str, method: str, body: Callable[[Method], Method]) -> type:
    """A Forwarding backend whose readers' `method` is `body(the correct method)`."""

    def broken(reader: ForwardingReader, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return body(getattr(reader.inner, method))(*args, **kwargs)

    reader_class = type(f"{name}Reader", (ForwardingReader,), {method: broken})

    def log_reader(self: Forwarding, *, wait_for_own_writes: bool = True) -> LogReader:
        inner = self.inner.log_reader(wait_for_own_writes=wait_for_own_writes)
        reader: LogReader = reader_class(inner)
        return reader

    return type(name, (Forwarding,), {"log_reader": log_reader, "__doc__": name})


def _backend_mutant(name: str, method: str, body: Callable[[Method], Method]) -> type:
    """A Forwarding backend whose `method` is `body(the correct method)`."""

    def broken(self: Forwarding, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return body(getattr(self.inner, method))(*args, **kwargs)

    return type(name, (Forwarding,), {method: broken, "__doc__": name})


def _mutant(protocol: str, name: str, method: str, body: Callable[[Method], Method]) -> type:
    if protocol == "LogReader":
        return _reader_mutant(f"Reader{name}", method, body)
    return _backend_mutant(name, method, body)


# -- ignoring a parameter ------------------------------------------------------------------


def _field_default(cls: type, field: str) -> object:
    """The default of a struct field, else its stand-in, else NODEFAULT."""
    for info in msgspec.structs.fields(cls):
        if info.name == field:
            if info.default is not msgspec.NODEFAULT:
                return info.default
            if info.default_factory is not msgspec.NODEFAULT:
                return info.default_factory()
    return STAND_INS.get(field, msgspec.NODEFAULT)


def _reset(value: object, field: str) -> object:
    """`value` (a struct, or a sequence of them) with `field` back to its default."""
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        return [_reset(item, field) for item in value]
    if isinstance(value, msgspec.Struct) and hasattr(value, field):
        default = _field_default(type(value), field)
        return msgspec.structs.replace(value, **{field: default})
    return value


def ignoring(protocol: str, method: str, parameter: str) -> type | None:
    """`method` ignores `parameter` ("name" or "name.field"), taking its default; None
    if the parameter has no default to take."""
    function = getattr(CONTRACT[protocol], method)
    signature = inspect.signature(function)
    name, _, field = parameter.partition(".")
    if not field and signature.parameters[name].default is inspect.Parameter.empty:
        return None
    if not inspect.iscoroutinefunction(function):
        return None  # log_reader(wait_for_own_writes): see EQUIVALENT
    if field and not any(
        _field_default(cls, field) is not msgspec.NODEFAULT
        for cls in _unwrap(typing.get_type_hints(function)[name])
        if isinstance(cls, type)
        and issubclass(cls, msgspec.Struct)
        and field in cls.__struct_fields__
    ):
        return None

    def body(correct: Method) -> Method:
        async def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(None, *args, **kwargs)
            if field:
                if name in bound.arguments:
                    bound.arguments[name] = _reset(bound.arguments[name], field)
            else:
                bound.arguments[name] = signature.parameters[name].default
            return await correct(*bound.args[1:], **bound.kwargs)

        return call

    label = _camel(parameter.replace(".", "_"))
    return _mutant(protocol, f"{_camel(method)}Ignores{label}", method, body)


# -- perturbing a returned field -----------------------------------------------------------


def _moved(value: object) -> object:
    """`value` moved by one: an integer, a time (one second), a status, a string."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, JobStatus):
        return _STATUSES[(_STATUSES.index(value) + 1) % len(_STATUSES)]
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.125
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
        return (value[0] + 1, value[1])  # a (position, hash) chain head
    if isinstance(value, tuple) and value and isinstance(value[0], datetime):
        return (value[0] + timedelta(seconds=1), *value[1:])  # a (tick, job id)
    if isinstance(value, str):
        return _TENANT_SWAP.get(value, value + "~")
    if isinstance(value, bytes):
        return value + b"~"
    if isinstance(value, list):
        return value[:-1]
    if isinstance(value, msgspec.Struct):  # a message: another queue
        text = next(f for f in value.__struct_fields__ if isinstance(getattr(value, f), str))
        return msgspec.structs.replace(value, **{text: getattr(value, text) + "~"})
    return None


def _change(record: object, field: str, op: str, partner: object = None) -> object:
    """`record` with `field` dropped, moved, given another tenant, or taken from
    `partner`; `record` itself if it has no such field."""
    if field == "return":
        return None if op == "drop" else _moved(record)
    if not hasattr(record, field):
        return record
    current = getattr(record, field)
    if op == "drop":
        new = None
    elif op == "swap":
        new = getattr(partner, field)
    elif op == "tenant":
        new = _TENANT_SWAP.get(current, "initech")
    else:
        new = _moved(current)
    if isinstance(record, msgspec.Struct):
        return msgspec.structs.replace(record, **{field: new})
    return record._replace(**{field: new})  # type: ignore[attr-defined]


def _perturbed(result: object, field: str, op: str) -> object:
    """The result of one call with `field` of its first record (that has it) changed."""
    if field == "key" and isinstance(result, dict) and result:
        first = next(iter(result))
        renamed = dict(result)
        value = renamed.pop(first)
        renamed[(_TENANT_SWAP.get(first[0], "initech"), first[1])] = value
        return renamed
    if isinstance(result, dict):
        keys = list(result)
        if field == "return":  # a map of plain values: change the first one
            mapped = dict(result)
            if keys:
                mapped[keys[0]] = _change(result[keys[0]], field, op)
            return mapped
        values = _perturbed(list(result.values()), field, op)
        assert isinstance(values, list)
        return dict(zip(keys, values, strict=True))
    if field == "return" and op == "swap" and isinstance(result, list):
        return result[1::-1] + result[2:]
    if field == "return" or not isinstance(result, list):
        return _change(result, field, op)
    holders = [i for i, record in enumerate(result) if hasattr(record, field)]
    changed = list(result)
    if op == "swap":  # the first two records whose values differ
        for a, b in itertools.pairwise(holders):
            if getattr(result[a], field) != getattr(result[b], field):
                changed[a] = _change(result[a], field, op, result[b])
                changed[b] = _change(result[b], field, op, result[a])
                break
        return changed
    for index in holders:  # the first record the change changes
        changed[index] = _change(result[index], field, op)
        if changed[index] != result[index]:
            break
    return changed


def perturbing(protocol: str, method: str, field: str, op: str) -> type:
    """`method` returns its correct result with `field` changed by `op`."""

    def body(correct: Method) -> Method:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return _perturbed(await correct(*args, **kwargs), field, op)

        return call

    label = "" if field == "return" else _camel(field)
    verb = {"drop": "Drops", "swap": "Swaps", "move": "Shifts", "tenant": "Misnames"}[op]
    return _mutant(protocol, f"{_camel(method)}{verb}{label or 'Result'}", method, body)


def _ops(protocol: str, method: str, field: str) -> list[str]:
    """The perturbations that apply to `field` of what `method` returns."""
    returned = typing.get_type_hints(getattr(CONTRACT[protocol], method)).get("return")
    is_list = typing.get_origin(returned) in (list, dict, Sequence)
    if field == "key":
        return ["tenant"]
    ops = ["drop", "tenant" if field == "tenant_id" else "move"]
    if is_list and (field != "return" or typing.get_origin(returned) is list):
        ops.append("swap")
    return ops


# -- side effects and atomicity -------------------------------------------------------------


class WaitForChangeNeverWoken(Forwarding):
    """wait_for_change ignores every change and sleeps its whole `max_wait`."""

    async def wait_for_change(self, max_wait: float) -> None:
        await asyncio.sleep(max_wait)


class KeyReleasedWhenJobEnds(Forwarding):
    """An idempotency key is released once its job is terminal: a repeat creates a job."""

    async def _holder_ended(self, ctx: QueueCtx, error: JobAlreadyExists) -> bool:
        status = await self.inner.get_status(ctx, error.job_id)
        return status.is_terminal

    async def enqueue(
        self, ctx: QueueCtx, message: JobMessage, *, trace_context: dict[str, str] | None = None
    ) -> str:
        try:
            return await self.inner.enqueue(ctx, message, trace_context=trace_context)
        except JobAlreadyExists as error:
            if not await self._holder_ended(ctx, error):
                raise
            free = msgspec.structs.replace(message, idempotency_key=None)
            return await self.inner.enqueue(ctx, free, trace_context=trace_context)


def _one_by_one(messages: Sequence[JobMessage]) -> list[list[JobMessage]]:
    return [[message] for message in messages]


def enqueue_many_not_atomic(refusal: type[QueueError], field: str | None) -> type:
    """enqueue_many refused with `refusal` (on `field`) keeps the jobs before the refused
    one: the batch is retried message by message up to the first refused."""

    async def enqueue_many(
        self: Forwarding, ctx: QueueCtx, messages: Sequence[JobMessage]
    ) -> list[str]:
        try:
            return await self.inner.enqueue_many(ctx, messages)
        except refusal as error:
            if field is not None and getattr(error, "field", None) != field:
                raise
            ids: list[str] = []
            for message in messages:
                if not isinstance(message, JobMessage) or message.after_earlier:
                    break
                try:
                    ids += await self.inner.enqueue_many(ctx, [message])
                except QueueError:
                    break
            raise error from None

    name = f"EnqueueManyKeepsPartOfABatchOn{refusal.__name__}{_camel(field or '')}"
    return type(name, (Forwarding,), {"enqueue_many": enqueue_many, "__doc__": name})


class SettleManyNotAtomicOnInvalidInput(Forwarding):
    """settle_many refused for a malformed entry keeps the entries before it settled."""

    async def settle_many(self, ctx: QueueCtx, settlements: Sequence[Any]) -> list[Any]:
        try:
            return await self.inner.settle_many(ctx, settlements)
        except InvalidInput:
            for item in settlements:
                if not isinstance(item, (Completion, Failure)):
                    break
                await self.inner.settle_many(ctx, [item])
            raise


# -- every generated mutant ------------------------------------------------------------------


def _methods(protocol: str) -> list[str]:
    return [
        name
        for name, _ in inspect.getmembers(CONTRACT[protocol], inspect.isfunction)
        if not name.startswith("_")
    ]


def parameter_mutants() -> list[type]:
    """One mutant per parameter (or struct-parameter field) that has a default."""
    found = []
    for protocol in CONTRACT:
        for method in _methods(protocol):
            function = getattr(CONTRACT[protocol], method)
            hints = typing.get_type_hints(function)
            for parameter in list(inspect.signature(function).parameters)[1:]:
                names = [parameter]
                for cls in _unwrap(hints[parameter]):
                    fields = _struct_fields(cls)
                    if fields and cls is not QueueCtx and cls is not LeasedJob:
                        names += [f"{parameter}.{f}" for f in fields if f != "type"]
                for name in dict.fromkeys(names):
                    mutant = ignoring(protocol, method, name)
                    if mutant is not None:
                        found.append(mutant)
    return found


def field_mutants() -> list[type]:
    """One mutant per returned field and perturbation that applies to it."""
    found = []
    for protocol in CONTRACT:
        for method in _methods(protocol):
            if method in ("snapshot", "log_reader"):
                continue  # a context manager and a reader: their reads are perturbed instead
            returned = typing.get_type_hints(getattr(CONTRACT[protocol], method)).get("return")
            for field in _fields_of(returned):
                if field == "type":
                    continue  # an event's tag is its class: not a field to perturb
                for op in _ops(protocol, method, field):
                    found.append(perturbing(protocol, method, field, op))
    return found


#: LogReader methods whose results are empty in every state the machine reaches.
ALWAYS_EMPTY = ("Anchors", "ArchiveCuts", "ArchivedRanges", "Unsealed", "IntegrityProblems")
#: Mutants of what only SQLite keeps (the memory backend has no status counts): they
#: wrap a SQLite backend when the base is the memory one.
SQLITE_BASED = ("ReaderStatusCountsDropsResult", "ReaderStatusCountsShiftsResult")


def boundary_mutants() -> dict[str, type]:
    """Every mutant generated at the contract boundary, by name (the equivalent ones
    added to EQUIVALENT)."""
    classes = parameter_mutants() + field_mutants()
    for cls in classes:
        name = cls.__name__
        if name.startswith(tuple(f"Reader{m}" for m in ALWAYS_EMPTY)) and not name.endswith(
            "DropsResult"
        ):
            EQUIVALENT.setdefault(
                name,
                "no record to perturb: the state machine never archives and leaves nothing"
                " unsealed (the coverage table names the tests that read such records)",
            )
        if name.startswith(("AnnounceWorker", "ReadWorkers")):
            EQUIVALENT.setdefault(
                name,
                "not run by the state machine: workers' presence records are not the log"
                " and no job state depends on them; the shipped"
                " dogqueue/testing/conformance/test_workers.py checks them on every backend",
            )
    classes += [WaitForChangeNeverWoken, KeyReleasedWhenJobEnds, SettleManyNotAtomicOnInvalidInput]
    classes += [enqueue_many_not_atomic(JobAlreadyExists, None)]
    classes += [
        enqueue_many_not_atomic(InvalidInput, field)
        for field in ("idempotency_key", "after", "max_retries")
    ]
    return {cls.__name__: cls for cls in classes}


def boundary_family(name: str) -> str:
    """The family of the boundary mutant called `name`."""
    for word, kind in (
        ("Ignores", "ignored parameter"),
        ("Drops", "dropped field"),
        ("Swaps", "swapped field"),
        ("Shifts", "field off by one"),
        ("Misnames", "wrong tenant"),
        ("KeepsPartOf", "atomicity"),
        ("NotAtomic", "atomicity"),
    ):
        if word in name:
            return kind
    return "skipped side effect"


_ONE_TENANT = "every result of one call belongs to the caller's tenant"
_ONE_JOB = "every event of one call belongs to one job"
#: Generated mutants that cannot be told from a correct backend through the contract
#: (so not run), with the reason; and parameters of synchronous methods, not generated.
EQUIVALENT: dict[str, str] = {
    "DequeueManySwapsTenantId": _ONE_TENANT,
    "HistorySwapsTenantId": _ONE_TENANT,
    "HistorySwapsJobId": _ONE_JOB,
    "CancelWorkflowSwapsResult": "the ids canceled come in no documented order",
    "ReadyTenantsSwapsResult": "the tenants come in no documented order",
    "ReaderDependenciesSwapsResult": "the triples come in no documented order",
    "DequeueManySwapsLeaseExpiresAt": "every lease of one call ends at the same time",
    "ReaderRecordsSwapsWriterSeq": "every sealed record's writer_seq is 0: a swap is a no-op",
    **{
        f"{prefix}HistorySwaps{_camel(field)}": "only one event of a job holds it"
        for prefix in ("", "Reader")
        for field in ("message", "trace_context", "waiting_for", "result")
    },
    "ReaderHistorySwapsTenantId": _ONE_TENANT,
    "ReaderHistorySwapsJobId": _ONE_JOB,
    "ReaderTenantEventsSwapsTenantId": _ONE_TENANT,
    "LogReader.log_reader(wait_for_own_writes)": "not generated: memory and SQLite number"
    " events at commit, so waiting changes nothing there; PostgreSQL's wait is covered by"
    " tests/observability/test_obs_log_reader.py",
}


__all__ = ["EQUIVALENT", "SQLITE_BASED", "ForwardingReader", "boundary_family", "boundary_mutants"]
_ = Backend
