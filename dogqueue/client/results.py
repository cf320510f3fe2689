"""Typed job handles, the errors of waiting for a result, and in-process wake-ups when
a job finishes."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Generic, TypeVar

from dogqueue.core.errors import QueueError

R = TypeVar("R", covariant=True)


class JobHandle(str, Generic[R]):
    """The id of an enqueued job, typed with the result its class declares.

    It is a `str` (the job id) everywhere an id is expected; `wait_result` uses its type
    to return the declared result type without restating it."""

    job_type: str

    def __new__(cls, job_id: str, job_type: str) -> JobHandle[R]:
        handle = super().__new__(cls, job_id)
        handle.job_type = job_type
        return handle

    @property
    def job_id(self) -> str:
        """The job id as a plain str."""
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (JobHandle, (str(self), self.job_type))

    def __repr__(self) -> str:
        return f"JobHandle({str(self)!r}, job_type={self.job_type!r})"


class JobFailed(QueueError):
    """The awaited job failed for good; `error` is the error of its last attempt."""

    def __init__(self, job_id: str, error: str | None) -> None:
        first_line = (error or "no error recorded").splitlines()[0]
        super().__init__(f"{_named(job_id)} failed: {first_line}")
        self.job_id = job_id
        self.error = error


class ResultTimeout(QueueError, TimeoutError):
    """The awaited job did not finish within the timeout; it may still finish later."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"{_named(job_id)} is still {status}")
        self.job_id = job_id
        self.status = status


def _named(job_id: str) -> str:
    """A job as messages name it: its id, and its type when the handle knows it."""
    job_type = getattr(job_id, "job_type", None)
    return f"job {str.__str__(job_id)}" + (f" ({job_type})" if job_type else "")


#: Waiters of each backend object, woken when a job of this process finishes.
_waiters: weakref.WeakKeyDictionary[object, set[asyncio.Future[None]]] = weakref.WeakKeyDictionary()


def job_settled(backend: object) -> None:
    """Wake the result waiters on `backend`: a job of this process may have finished."""
    if not _waiters:  # the worker calls this per job; most processes wait for no result
        return
    waiters = _waiters.pop(backend, None)
    for waiter in waiters or ():
        if not waiter.done():
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def settled_waiter(backend: object) -> asyncio.Future[None]:
    """A future resolved by the next `job_settled(backend)`."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _waiters.setdefault(backend, set()).add(waiter)
    return waiter


def forget_waiter(backend: object, waiter: asyncio.Future[None]) -> None:
    """Stop tracking `waiter` (its wait ended another way)."""
    waiter.cancel()
    waiters = _waiters.get(backend)
    if waiters is not None:
        waiters.discard(waiter)
