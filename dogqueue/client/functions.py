"""Function jobs: `@dogqueue.job` turns a typed function into a job class, registered
where it is defined when given a registry."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypeVar, overload

import msgspec

from dogqueue.core.errors import InvalidInput
from dogqueue.core.status import JobPriority
from dogqueue.jobs import BaseJob, Job, JobRegistry, SyncJob

C = TypeVar("C")
P = ParamSpec("P")
R = TypeVar("R")

_ORDINARY = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class JobFunction(Generic[C, P, R]):
    """A function made a job. Calling it with the function's arguments (all but the
    context) makes the job object to enqueue: `await adapter.enqueue(ctx, send(to="a"))`.
    `job_class` is the generated class."""

    def __init__(
        self,
        function: Callable[..., Any],
        job_class: type[BaseJob[C, R]],
        takes_context: bool = True,
    ) -> None:
        self.function = function
        self.job_class = job_class
        #: Whether the function's first parameter is the worker's context.
        self.takes_context = takes_context
        self._signature = inspect.signature(function)
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", job_class.__name__)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> BaseJob[C, R]:
        leading = (None,) if self.takes_context else ()
        bound = self._signature.bind(*leading, *args, **kwargs)
        bound.apply_defaults()
        fields = dict(list(bound.arguments.items())[len(leading) :])
        return self.job_class(**fields)

    def __repr__(self) -> str:
        return f"<job function {self.job_class.JOB_TYPE!r}: {self.function.__qualname__}>"


def _make_class(
    function: Callable[..., Any],
    takes_context: bool,
    job_type: str | None,
    max_retries: int | None,
    priority: JobPriority | None,
    timeout: timedelta | None,
) -> type[BaseJob[Any, Any]]:
    parameters = list(inspect.signature(function).parameters.values())
    if takes_context:
        if not parameters or parameters[0].kind not in _ORDINARY:
            raise InvalidInput(
                "function",
                "must take the worker's context as its first argument "
                "(or be made a job with takes_context=False)",
            )
        parameters = parameters[1:]
    try:
        hints = typing.get_type_hints(function)
    except Exception as error:
        raise InvalidInput("function", f"annotations do not resolve: {error}") from error
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    positional: list[str] = []
    keywords: list[str] = []
    for parameter in parameters:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise InvalidInput("function", "*args and **kwargs cannot be stored in a payload")
        annotation = hints.get(parameter.name, Any)
        if parameter.default is inspect.Parameter.empty:
            fields.append((parameter.name, annotation))
        else:
            fields.append((parameter.name, annotation, parameter.default))
        (positional if parameter.kind in _ORDINARY else keywords).append(parameter.name)

    is_async = inspect.iscoroutinefunction(function)

    def arguments(job: BaseJob[Any, Any]) -> tuple[list[Any], dict[str, Any]]:
        return [getattr(job, name) for name in positional], {
            name: getattr(job, name) for name in keywords
        }

    def call(self: BaseJob[Any, Any], ctx: Any) -> Any:
        args, kwargs = arguments(self)
        if takes_context:
            args.insert(0, ctx)
        return function(*args, **kwargs)

    async def execute_async(self: BaseJob[Any, Any], ctx: Any) -> Any:
        return await call(self, ctx)

    def execute_sync(self: BaseJob[Any, Any], ctx: Any) -> Any:
        return call(self, ctx)

    namespace: dict[str, Any] = {
        "JOB_TYPE": job_type or function.__name__,
        "execute": execute_async if is_async else execute_sync,
        "__doc__": function.__doc__,
    }
    if max_retries is not None:
        namespace["MAX_RETRIES"] = max_retries
    if priority is not None:
        namespace["PRIORITY"] = priority
    if timeout is not None:
        namespace["TIMEOUT"] = timeout
    if "return" in hints:
        # The declared result type, for wait_result.
        namespace["execute"].__annotations__ = {"return": hints["return"]}
    job_class: type[BaseJob[Any, Any]] = msgspec.defstruct(  # type: ignore[assignment]
        f"{function.__name__}_job",
        fields,
        bases=(Job if is_async else SyncJob,),
        module=function.__module__,
        namespace=namespace,
        kw_only=True,
    )
    return job_class


def _made(
    function: Callable[..., Any],
    takes_context: bool | None,
    registry: JobRegistry[Any] | None,
    options: tuple[str | None, int | None, JobPriority | None, timedelta | None],
) -> JobFunction[Any, Any, Any]:
    if not callable(function):
        raise InvalidInput("function", "must be a function")
    if takes_context is None:  # a function without parameters has no context to take
        takes_context = bool(inspect.signature(function).parameters)
    job_class = _make_class(function, takes_context, *options)
    made: JobFunction[Any, Any, Any] = JobFunction(function, job_class, takes_context)
    if registry is not None:
        registry.register(made.job_class)
    return made


class JobDecorator:
    """What `job(...)` with options returns: apply it to a function whose first
    parameter is the worker's context."""

    def __init__(
        self,
        registry: JobRegistry[Any] | None,
        job_type: str | None,
        max_retries: int | None,
        priority: JobPriority | None,
        timeout: timedelta | None,
    ) -> None:
        self._registry = registry
        self._options = (job_type, max_retries, priority, timeout)

    @overload
    def __call__(
        self, function: Callable[Concatenate[C, P], Coroutine[Any, Any, R]]
    ) -> JobFunction[C, P, R]: ...

    @overload
    def __call__(self, function: Callable[Concatenate[C, P], R]) -> JobFunction[C, P, R]: ...

    @overload
    def __call__(
        self, function: Callable[[], Coroutine[Any, Any, R]]
    ) -> JobFunction[Any, [], R]: ...

    @overload
    def __call__(self, function: Callable[[], R]) -> JobFunction[Any, [], R]: ...

    def __call__(self, function: Callable[..., Any]) -> JobFunction[Any, Any, Any]:
        return _made(function, None, self._registry, self._options)


class ContextFreeDecorator:
    """What `job(takes_context=False, ...)` returns: apply it to a function whose
    parameters are all payload; it runs under any worker context."""

    def __init__(
        self,
        registry: JobRegistry[Any] | None,
        job_type: str | None,
        max_retries: int | None,
        priority: JobPriority | None,
        timeout: timedelta | None,
    ) -> None:
        self._registry = registry
        self._options = (job_type, max_retries, priority, timeout)

    @overload
    def __call__(self, function: Callable[P, Coroutine[Any, Any, R]]) -> JobFunction[Any, P, R]: ...

    @overload
    def __call__(self, function: Callable[P, R]) -> JobFunction[Any, P, R]: ...

    def __call__(self, function: Callable[..., Any]) -> JobFunction[Any, Any, Any]:
        return _made(function, False, self._registry, self._options)


@overload
def job(
    function: Callable[Concatenate[C, P], Coroutine[Any, Any, R]],
) -> JobFunction[C, P, R]: ...


@overload
def job(function: Callable[Concatenate[C, P], R]) -> JobFunction[C, P, R]: ...


@overload
def job(function: Callable[[], Coroutine[Any, Any, R]]) -> JobFunction[Any, [], R]: ...


@overload
def job(function: Callable[[], R]) -> JobFunction[Any, [], R]: ...


@overload
def job(
    *,
    takes_context: Literal[False],
    registry: JobRegistry[Any] | None = None,
    job_type: str | None = None,
    max_retries: int | None = None,
    priority: JobPriority | None = None,
    timeout: timedelta | None = None,
) -> ContextFreeDecorator: ...


@overload
def job(
    *,
    takes_context: Literal[True] = True,
    registry: JobRegistry[Any] | None = None,
    job_type: str | None = None,
    max_retries: int | None = None,
    priority: JobPriority | None = None,
    timeout: timedelta | None = None,
) -> JobDecorator: ...


def job(
    function: Callable[..., Any] | None = None,
    *,
    takes_context: bool = True,
    registry: JobRegistry[Any] | None = None,
    job_type: str | None = None,
    max_retries: int | None = None,
    priority: JobPriority | None = None,
    timeout: timedelta | None = None,
) -> JobFunction[Any, Any, Any] | JobDecorator | ContextFreeDecorator:
    """Make a typed function a job: `async def f(ctx: C, a: int) -> R` (or a plain
    `def`, run in the worker's thread pool) becomes a job whose payload is the
    arguments after the context. `@job` uses the function's name as JOB_TYPE;
    `@job(job_type=..., max_retries=..., priority=..., timeout=...)` sets them.

    `takes_context=False` makes every parameter payload (a function without
    parameters needs no flag). `registry=` registers the job there when it is
    defined: an adapter made with `QueueAdapter(backend, jobs=registry)` knows it."""
    options = (job_type, max_retries, priority, timeout)
    if takes_context is False:
        if function is not None:
            raise InvalidInput("takes_context", "goes with @job(takes_context=False), not @job")
        return ContextFreeDecorator(registry, *options)
    decorator = JobDecorator(registry, *options)
    if function is None:
        return decorator
    return decorator(function)
