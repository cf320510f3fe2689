"""Synchronous jobs on threads of their own, so that one the worker stops (canceled,
lease lost, timed out, shut down) can be interrupted: JobInterrupted is raised inside it
at its next Python instruction. A blocking C call (`time.sleep`, a socket read) finishes
first; a job that must stop sooner waits on `current_run().stop_requested` instead.

A dedicated thread per job, not a pool: an exception that lands just after the job
returned can then only end a thread that is ending anyway, and a stopped job that is
still unwinding keeps its slot, so the worker never runs more threads than it allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.restype = ctypes.c_int


class JobInterrupted(BaseException):
    """Raised inside a synchronous job the worker stopped. A BaseException (like
    asyncio.CancelledError), so that `except Exception` in job code does not swallow it."""


class Interruptible:
    """The thread running one synchronous job, and a way to interrupt it from another
    thread. Once interrupted, it stays so: a job not yet started never starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._interrupted = False

    @property
    def interrupted(self) -> bool:
        """Whether `interrupt` was called."""
        return self._interrupted

    def interrupt(self) -> None:
        """Raise JobInterrupted in the job's thread, if it is running the job now."""
        with self._lock:
            self._interrupted = True
            if self._thread_id is not None:
                _set_async_exc(ctypes.c_ulong(self._thread_id), ctypes.py_object(JobInterrupted))

    def enter(self) -> None:
        """Mark the calling thread as the job's (raises JobInterrupted if too late)."""
        with self._lock:
            if self._interrupted:
                raise JobInterrupted
            self._thread_id = threading.get_ident()

    def leave(self) -> None:
        """The job has returned: no interruption may reach this thread any more."""
        with self._lock:
            self._thread_id = None
        # Drop an interruption sent just before the lock was taken but not yet raised
        # (a NULL exception clears the pending one).
        _set_async_exc(ctypes.c_ulong(threading.get_ident()), None)


class SyncJobThreads:
    """Runs synchronous jobs, at most `size` at once, each on a new daemon thread."""

    def __init__(self, size: int, name: str = "dogqueue-job") -> None:
        self._slots = asyncio.Semaphore(size)
        self._name = name
        self._count = 0

    async def run(self, call: Callable[[], T], interruptible: Interruptible) -> T:
        """Run `call()` on a thread of its own and return (or raise) what it does. If
        the awaiting task is cancelled, the thread runs on until it returns or is
        interrupted; its slot is free only then."""
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        done.add_done_callback(_retrieve)

        def deliver(result: Any, error: BaseException | None) -> None:
            self._slots.release()
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)

        def target() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                try:
                    interruptible.enter()
                    try:
                        result = call()
                    finally:
                        interruptible.leave()
                except BaseException as raised:  # delivered to the awaiting task
                    error = raised
            except JobInterrupted as late:  # landed after the job had returned
                error = late
            # A closed loop (RuntimeError): nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, result, error)

        self._count += 1
        thread = threading.Thread(target=target, name=f"{self._name}-{self._count}", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._slots.release()
            raise
        return await done


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an outcome nobody awaits any more (a stopped job's) as seen."""
    if not future.cancelled():
        future.exception()
