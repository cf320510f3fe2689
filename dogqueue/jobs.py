"""Typed job definitions and the registry that turns stored messages back into them."""

from __future__ import annotations

import asyncio
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import msgspec

from dogqueue.core import validation as check
from dogqueue.core.errors import InvalidInput, InvalidJobType
from dogqueue.core.message import JobMessage
from dogqueue.core.status import JobPriority

ContextT = TypeVar("ContextT", contravariant=True)
ResultT = TypeVar("ResultT", covariant=True)
JobClassT = TypeVar("JobClassT", bound="type[BaseJob[Any, Any]]")

#: The codec name of payloads and results encoded by the adapter.
JSON_CODEC = "json"


class JobError(Exception):
    """Raised by a job to fail its attempt. `retryable=False` fails it for good.

    This is the job's own failure, not a QueueError.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __reduce__(self) -> tuple[type[JobError], tuple[str, bool]]:
        return (type(self), (self.message, self.retryable))


class PayloadError(JobError):
    """A stored payload that does not decode into its job class (not retryable)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)


class BaseJob(msgspec.Struct, Generic[ContextT, ResultT], kw_only=True):
    """What every job shares: payload fields and class settings. Subclass `Job` (async
    `execute`) or `SyncJob` (plain `def execute`), not this."""

    #: The stable name stored in the log (required; keep it when renaming the class).
    JOB_TYPE: ClassVar[str]
    #: Dequeue priority of jobs of this class unless the enqueue names one.
    PRIORITY: ClassVar[JobPriority] = JobPriority.NORMAL
    #: Retries after the first attempt unless the enqueue names a number.
    MAX_RETRIES: ClassVar[int] = 3
    #: Longest run of one attempt; None uses the worker's default.
    TIMEOUT: ClassVar[timedelta | None] = None


class Job(BaseJob[ContextT, ResultT], kw_only=True):
    """A job's payload and code. Subclass with fields for the payload, set JOB_TYPE and
    implement `async def execute(self, ctx: C) -> R`, which gets the worker's context
    object, or `async def execute(self) -> R` when the job uses none; mypy checks either
    against the class's `Job[C, R]`. It returns the job's result (msgspec JSON)."""

    if TYPE_CHECKING:
        execute: ClassVar[
            Callable[[Any], Awaitable[ResultT]] | Callable[[Any, ContextT], Awaitable[ResultT]]
        ]
    else:

        async def execute(self, ctx=None):
            raise NotImplementedError(f"{type(self).__name__}.execute is not implemented")


class SyncJob(BaseJob[ContextT, ResultT], kw_only=True):
    """A job whose `execute` is a plain `def`: the worker runs it on a thread of its own
    (at most `sync_threads` at once), so blocking calls (`time.sleep`, a synchronous
    client) do not stall the loop. When the job is canceled or times out, JobInterrupted
    is raised inside it at its next Python instruction."""

    if TYPE_CHECKING:
        #: `def execute(self, ctx: C) -> R`, or `def execute(self) -> R` (no context).
        execute: ClassVar[Callable[[Any], ResultT] | Callable[[Any, ContextT], ResultT]]
    else:

        def execute(self, ctx=None):
            raise NotImplementedError(f"{type(self).__name__}.execute is not implemented")


@functools.cache
def takes_context(job_class: type[BaseJob[Any, Any]]) -> bool:
    """Whether the class's `execute` takes the worker's context (`execute(self, ctx)`)
    rather than only `self`."""
    execute = getattr(job_class, "execute", None)
    if execute is None:
        return False
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    parameters = list(inspect.signature(execute).parameters.values())[1:]  # after self
    return any(parameter.kind in positional for parameter in parameters)


def execute_call(job: BaseJob[Any, Any], context: object) -> Callable[[], Any]:
    """The job's `execute`, bound to `context` when it takes one: call it to run it."""
    execute: Callable[..., Any] = getattr(job, "execute")  # noqa: B009 (typed per class)
    return functools.partial(execute, context) if takes_context(type(job)) else execute


def result_type_of(job_class: type[BaseJob[Any, Any]]) -> Any:
    """The result type `execute` declares (Any when it cannot be resolved)."""
    try:
        hints = typing.get_type_hints(getattr(job_class, "execute", None))
    except Exception:  # names only resolvable where the class was defined
        return Any
    declared = hints.get("return", Any)
    if declared is type(None) or isinstance(declared, TypeVar):
        return Any
    return declared


_json_encoder = msgspec.json.Encoder()


def encode_json(value: object) -> bytes:
    """msgspec JSON bytes of a payload or result."""
    return _json_encoder.encode(value)


class JobRegistry(Generic[ContextT]):
    """Job classes by JOB_TYPE, with a decoder for each built once. An application
    keeps one and registers its jobs where they are defined (`@registry.register` on
    a class, `@job(registry=registry)` on a function); `QueueAdapter(backend,
    jobs=registry)` and its workers then know every one of them."""

    def __init__(self) -> None:
        self._classes: dict[str, type[BaseJob[Any, Any]]] = {}
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}

    def register(self, job_class: JobClassT) -> JobClassT:
        """Add `job_class` and return it (so it decorates a class); a second class
        under the same JOB_TYPE is InvalidInput."""
        if not (isinstance(job_class, type) and issubclass(job_class, BaseJob)):
            raise InvalidInput("job_class", "must subclass dogqueue.Job or dogqueue.SyncJob")
        job_type = getattr(job_class, "JOB_TYPE", None)
        check.check_name("JOB_TYPE", job_type)
        assert isinstance(job_type, str)
        check.check_priority(job_class.PRIORITY)
        check.check_max_retries(job_class.MAX_RETRIES)
        existing = self._classes.get(job_type)
        if existing is not None and existing is not job_class:
            raise InvalidInput(
                "JOB_TYPE",
                f"{job_type!r} is already registered to {existing.__qualname__}",
            )
        self._classes[job_type] = job_class
        self._decoders[job_type] = msgspec.json.Decoder(job_class)
        return job_class

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._classes

    def __len__(self) -> int:
        return len(self._classes)

    def job_class(self, job_type: str) -> type[BaseJob[Any, Any]]:
        """The class registered under `job_type`, or InvalidJobType."""
        try:
            return self._classes[job_type]
        except KeyError:
            raise InvalidJobType(job_type) from None

    @property
    def job_types(self) -> list[str]:
        """Every registered JOB_TYPE, sorted."""
        return sorted(self._classes)

    def decode(self, message: JobMessage) -> BaseJob[Any, Any]:
        """The job a message carries. InvalidJobType for an unknown type; JobError
        (not retryable) for a payload that does not decode into the class."""
        self.job_class(message.job_type)
        if message.codec != JSON_CODEC:
            raise PayloadError(f"unsupported codec {message.codec!r}")
        try:
            job: BaseJob[Any, Any] = self._decoders[message.job_type].decode(message.payload_bytes)
        except msgspec.DecodeError as error:  # ValidationError is a DecodeError
            raise PayloadError(f"payload does not decode: {error}") from error
        return job

    async def execute_job(self, message: JobMessage, context: ContextT) -> bytes | None:
        """Decode the message, await its `execute(context)` and return the result as
        msgspec JSON (None when `execute` returns None). Exceptions propagate."""
        job = self.decode(message)
        if isinstance(job, SyncJob):
            result = await asyncio.to_thread(execute_call(job, context))
        elif isinstance(job, Job):
            result = await execute_call(job, context)()
        else:
            raise JobError(f"{type(job).__name__} is neither a Job nor a SyncJob", retryable=False)
        return None if result is None else encode_json(result)
